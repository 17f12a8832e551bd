# Builds and installs pve-s3 the way Proxmox add-ons are shipped.
#   make                               npm ci (when node_modules is missing) + WASM + TypeScript build
#   make bundle                        the installable host in build/pkg (esbuild, scripts/bundle.mjs)
#   make install DESTDIR=/some/root    the installed tree (exactly what the .deb contains)
#   make deb                           pve-s3_<version>_all.deb, built with dpkg-deb from this tree alone
#   make lintian                       make deb, then lintian --pedantic on it (no tags, no overrides)
PACKAGE  := pve-s3
VERSION  := $(shell node -p "require('./package.json').version")
# where the bundle, the package tree and the .deb go (tests build into a scratch directory)
BUILDDIR ?= build
DEBDIR   ?= .
DEB      := $(DEBDIR)/$(PACKAGE)_$(VERSION)_all.deb
DESTDIR  ?=
PREFIX   ?= /usr
LIBDIR   := $(PREFIX)/lib/pve-s3
PERLDIR  := $(PREFIX)/share/perl5/PVE/Storage/Custom
DOCDIR   := $(PREFIX)/share/doc/$(PACKAGE)
MANDIR   := $(PREFIX)/share/man/man1
BUNDLE   := $(BUILDDIR)/pkg
DEBROOT  := $(BUILDDIR)/deb/root
COMMANDS := pve-s3-backup pve-s3-restore pve-s3-maintenance pve-s3-vzdump-hook
# no timestamps from the build machine in the package (reproducible builds)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

.PHONY: all build bundle install deb lintian clean

all: build

node_modules/.package-lock.json:
	npm ci --no-audit --no-fund

# SKIP_NPM_BUILD=1: use host/dist and build/core.wasm as they are (npm test has just built them)
build: node_modules/.package-lock.json
ifndef SKIP_NPM_BUILD
	npm run build
endif

bundle: build
	node scripts/bundle.mjs $(BUNDLE)

# Copies the bundle as it is laid out (entries executable: those with a #! line; chunks/, core.wasm next to its loader,
# package.json marking the .js files as ES modules).
install: bundle
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PERLDIR) \
		$(DESTDIR)/etc/logrotate.d $(DESTDIR)$(DOCDIR) $(DESTDIR)$(MANDIR)
	cd $(BUNDLE) && find . -type d -printf '%P\n' | while read -r d; do \
		[ -z "$$d" ] || install -d "$(DESTDIR)$(LIBDIR)/$$d"; done
	cd $(BUNDLE) && find . -type f -printf '%P\n' | LC_ALL=C sort | while read -r f; do \
		mode=0644; [ "$$(head -c2 "$$f")" != '#!' ] || mode=0755; \
		install -m $$mode "$$f" "$(DESTDIR)$(LIBDIR)/$$f"; done
	# stable names without the extension; node follows the link and sees .cjs (the host) or .js under a type:module package.json
	ln -sfn pve-s3-host.cjs $(DESTDIR)$(LIBDIR)/pve-s3-host
	ln -sfn pve-s3-vzdump-hook.js $(DESTDIR)$(LIBDIR)/pve-s3-vzdump-hook
	for c in $(COMMANDS); do ln -sfn ../lib/pve-s3/$$c.js $(DESTDIR)$(PREFIX)/bin/$$c; done
	install -m 0644 perl/PVE/Storage/Custom/S3Plugin.pm $(DESTDIR)$(PERLDIR)/
	install -m 0644 packaging/logrotate $(DESTDIR)/etc/logrotate.d/pve-s3
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 packaging/copyright $(DESTDIR)$(DOCDIR)/copyright
	for c in $(COMMANDS); do node scripts/manpage.mjs $(BUNDLE)/$$c.js $$c $(VERSION) | gzip -9n > $(DESTDIR)$(MANDIR)/$$c.1.gz; done

deb: build
	rm -rf $(BUILDDIR)/deb
	$(MAKE) install DESTDIR=$(abspath $(DEBROOT)) PREFIX=/usr SKIP_NPM_BUILD=1
	gzip -9n -c packaging/changelog > $(DEBROOT)$(DOCDIR)/changelog.gz
	install -d $(DEBROOT)/DEBIAN
	sed -e 's/@VERSION@/$(VERSION)/' \
	    -e "s/@SIZE@/$$(du -sk --apparent-size --exclude=DEBIAN $(DEBROOT) | cut -f1)/" \
	    packaging/control > $(DEBROOT)/DEBIAN/control
	install -m 0755 packaging/postinst packaging/postrm $(DEBROOT)/DEBIAN/
	install -m 0644 packaging/conffiles $(DEBROOT)/DEBIAN/
	cd $(DEBROOT) && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
		| xargs -0 md5sum > DEBIAN/md5sums
	chmod 0644 $(DEBROOT)/DEBIAN/md5sums
	find $(DEBROOT) -newermt "@$(SOURCE_DATE_EPOCH)" -print0 | xargs -0r touch --no-dereference --date="@$(SOURCE_DATE_EPOCH)"
	dpkg-deb --root-owner-group -Zxz --build $(DEBROOT) $(DEB)

lintian: deb
	lintian --info --display-info --pedantic $(DEB)

clean:
	rm -rf build host/dist $(PACKAGE)_*.deb
