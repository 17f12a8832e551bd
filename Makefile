# Builds and installs pve-s3 the way Proxmox add-ons are shipped.
#   make                 npm ci (when node_modules is missing) + WASM + TypeScript build
#   make install DESTDIR=/some/root   the installed tree (what the .deb contains)
#   make deb             pve-s3_<version>_all.deb, built with dpkg-deb from this tree alone
PACKAGE  := pve-s3
VERSION  := $(shell node -p "require('./package.json').version")
DEB      := $(PACKAGE)_$(VERSION)_all.deb
DESTDIR  ?=
PREFIX   ?= /usr
LIBDIR   := $(PREFIX)/lib/pve-s3
PERLDIR  := $(PREFIX)/share/perl5/PVE/Storage/Custom
DOCDIR   := $(PREFIX)/share/doc/$(PACKAGE)
BUNDLE   := build/pkg
DEBROOT  := build/deb/root
COMMANDS := pve-s3-backup pve-s3-restore pve-s3-maintenance

.PHONY: all build bundle install deb clean

all: build

node_modules/.package-lock.json:
	npm ci --no-audit --no-fund

build: node_modules/.package-lock.json
	npm run build

bundle: build
	node scripts/bundle.mjs $(BUNDLE)

install: bundle
	install -d $(DESTDIR)$(LIBDIR)/lib $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PERLDIR) \
		$(DESTDIR)/etc/logrotate.d $(DESTDIR)$(DOCDIR)
	install -m 0755 $(BUNDLE)/*.mjs $(DESTDIR)$(LIBDIR)/
	install -m 0644 $(BUNDLE)/core.wasm $(DESTDIR)$(LIBDIR)/
	install -m 0644 $(BUNDLE)/lib/* $(DESTDIR)$(LIBDIR)/lib/
	# stable names without the extension; node follows the link and sees .mjs (ESM)
	ln -sf pve-s3-host.mjs $(DESTDIR)$(LIBDIR)/pve-s3-host
	ln -sf pve-s3-vzdump-hook.mjs $(DESTDIR)$(LIBDIR)/pve-s3-vzdump-hook
	for c in $(COMMANDS); do ln -sf ../lib/pve-s3/$$c.mjs $(DESTDIR)$(PREFIX)/bin/$$c; done
	install -m 0644 perl/PVE/Storage/Custom/S3Plugin.pm $(DESTDIR)$(PERLDIR)/
	install -m 0644 packaging/logrotate $(DESTDIR)/etc/logrotate.d/pve-s3
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 packaging/copyright $(DESTDIR)$(DOCDIR)/copyright

deb: build
	rm -rf build/deb
	$(MAKE) install DESTDIR=$(CURDIR)/$(DEBROOT) PREFIX=/usr
	gzip -9n -c packaging/changelog > $(DEBROOT)$(DOCDIR)/changelog.gz
	install -d $(DEBROOT)/DEBIAN $(DEBROOT)/usr/share/lintian/overrides
	install -m 0644 packaging/lintian-overrides $(DEBROOT)/usr/share/lintian/overrides/$(PACKAGE)
	sed -e 's/@VERSION@/$(VERSION)/' \
	    -e "s/@SIZE@/$$(du -sk --exclude=DEBIAN $(DEBROOT) | cut -f1)/" \
	    packaging/control > $(DEBROOT)/DEBIAN/control
	install -m 0755 packaging/postinst packaging/postrm $(DEBROOT)/DEBIAN/
	install -m 0644 packaging/conffiles $(DEBROOT)/DEBIAN/
	cd $(DEBROOT) && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
		| xargs -0 md5sum > DEBIAN/md5sums
	dpkg-deb --root-owner-group -Zxz --build $(DEBROOT) $(DEB)

clean:
	rm -rf build host/dist $(PACKAGE)_*.deb
