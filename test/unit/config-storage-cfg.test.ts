import { describe, expect, it } from 'vitest';
import { parseStorageCfg } from '../../host/src/config/storage-cfg.js';
import { parseIni, pickProfile } from '../../host/src/config/credentials.js';

const PVE_CFG = `dir: local
\tpath /var/lib/vz
\tcontent iso,vztmpl,backup

lvmthin: local-lvm
\tthinpool data
\tvgname pve
\tcontent rootdir,images

# the seed's storage
s3: mon-stockage-s3
\tbucket my-bucket-proxmox
\tendpoint s3.amazonaws.com
\tregion us-east-1
\taccess_key AKIAEXAMPLE
\tprefix proxmox/
\tcontent backup,iso,vztmpl,snippets
\tlifecycle_enabled 1
\tdisable

pbs: backup-server
\tdatastore store1
\tserver 10.0.0.2
`;

describe('parseStorageCfg', () => {
  it('reads every section with its type, keys and flags', () => {
    const m = parseStorageCfg(PVE_CFG);
    expect([...m.keys()]).toEqual(['local', 'local-lvm', 'mon-stockage-s3', 'backup-server']);
    expect(m.get('local')).toEqual({ type: 'dir', props: { path: '/var/lib/vz', content: 'iso,vztmpl,backup' } });
    const s3 = m.get('mon-stockage-s3')!;
    expect(s3.type).toBe('s3');
    expect(s3.props).toEqual({
      bucket: 'my-bucket-proxmox',
      endpoint: 's3.amazonaws.com',
      region: 'us-east-1',
      access_key: 'AKIAEXAMPLE',
      prefix: 'proxmox/',
      content: 'backup,iso,vztmpl,snippets',
      lifecycle_enabled: '1',
      disable: '1', // a key without value is a flag
    });
    expect(m.get('backup-server')!.type).toBe('pbs');
  });

  it('accepts CRLF line ends, space indentation and a BOM', () => {
    const text = '\uFEFFs3: a1\r\n    bucket b-1\r\n    endpoint h:9000\r\n\r\ns3: a2\r\n  bucket b-2\r\n';
    const m = parseStorageCfg(text);
    expect(m.get('a1')!.props).toEqual({ bucket: 'b-1', endpoint: 'h:9000' });
    expect(m.get('a2')!.props).toEqual({ bucket: 'b-2' });
  });

  it('skips comments anywhere, including inside a section, and drops trailing " # …" comments', () => {
    const text = [
      's3: my-s3',
      '    bucket my-bucket-proxmox',
      '    # a comment line inside the section',
      '    endpoint s3.amazonaws.com          # host[:port]; scheme https unless `use_ssl 0` or given',
      '    multipart_chunk_size 100           # MB, 5..5120',
      '    keep_local # only a comment: a flag',
      '',
    ].join('\n');
    expect(parseStorageCfg(text).get('my-s3')!.props).toEqual({
      bucket: 'my-bucket-proxmox',
      endpoint: 's3.amazonaws.com',
      multipart_chunk_size: '100',
      keep_local: '1',
    });
  });

  it('keeps values with inner spaces and the first of duplicate keys, warning about odd lines', () => {
    const warnings: string[] = [];
    const text = 's3: x1\n\tbucket first\n\tbucket second\n\tprefix a b/\nstray line\n';
    const m = parseStorageCfg(text, { onWarning: (w) => warnings.push(w), file: '/etc/pve/storage.cfg' });
    expect(m.get('x1')!.props).toEqual({ bucket: 'first', prefix: 'a b/' });
    expect(warnings).toEqual([
      "/etc/pve/storage.cfg line 3: (section 'x1') duplicate attribute 'bucket' ignored",
      "/etc/pve/storage.cfg line 5: (section 'x1') ignored line starting 'stray'",
    ]);
  });

  it('a blank line ends a section: later indented lines belong to none', () => {
    const warnings: string[] = [];
    const m = parseStorageCfg('s3: x1\n\tbucket b1\n\n\tendpoint lost\n', { onWarning: (w) => warnings.push(w) });
    expect(m.get('x1')!.props).toEqual({ bucket: 'b1' });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('outside a section');
  });

  it('a header ends the previous section even without a blank line; a duplicate id is ignored', () => {
    const warnings: string[] = [];
    const m = parseStorageCfg('s3: x1\n\tbucket b1\ns3: x2\n\tbucket b2\n\ns3: x1\n\tbucket b3\n', {
      onWarning: (w) => warnings.push(w),
    });
    expect(m.get('x1')!.props.bucket).toBe('b1');
    expect(m.get('x2')!.props.bucket).toBe('b2');
    expect(warnings.join()).toContain("duplicate section 'x1'");
  });

  it('never echoes a misplaced secret line in warnings', () => {
    const warnings: string[] = [];
    parseStorageCfg('secret_key TOPSECRETVALUE123\ns3: a1\n\tbucket b\n', { onWarning: (w) => warnings.push(w) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).not.toContain('TOPSECRETVALUE123');
  });

  it('empty text gives no sections', () => {
    expect(parseStorageCfg('').size).toBe(0);
    expect(parseStorageCfg('# only comments\n\n').size).toBe(0);
  });
});

describe('INI credentials file', () => {
  const INI = [
    '# pve-s3 credentials',
    '[default]',
    'aws_access_key_id = DEFAULTKEY',
    'aws_secret_access_key = defaultsecret/with+chars=',
    'region = eu-west-1',
    '',
    '[profile mon-stockage-s3]',
    'aws_access_key_id=STORAGEKEY',
    'aws_secret_access_key=storagesecret',
    'endpoint_url = https://s3.example.net',
    '; another comment',
    '[other]',
    'AWS_ACCESS_KEY_ID = OTHERKEY',
    'endpoint = minio.local:9000',
  ].join('\r\n');

  it('parses sections, "profile x" names, case-insensitive keys and values with "="', () => {
    const ini = parseIni(INI);
    expect(ini.get('default')).toEqual({
      aws_access_key_id: 'DEFAULTKEY',
      aws_secret_access_key: 'defaultsecret/with+chars=',
      region: 'eu-west-1',
    });
    expect(ini.get('mon-stockage-s3')!.endpoint_url).toBe('https://s3.example.net');
    expect(ini.get('other')!.aws_access_key_id).toBe('OTHERKEY');
  });

  it('picks the explicit profile, else the storage id, else default', () => {
    const ini = parseIni(INI);
    expect(pickProfile(ini, { storageId: 'mon-stockage-s3' })).toEqual({
      name: 'mon-stockage-s3',
      values: { access_key: 'STORAGEKEY', secret_key: 'storagesecret', endpoint: 'https://s3.example.net' },
    });
    expect(pickProfile(ini, { storageId: 'unknown-id' })!.name).toBe('default');
    expect(pickProfile(ini, { explicit: 'other', storageId: 'mon-stockage-s3' })!.values).toEqual({
      access_key: 'OTHERKEY',
      endpoint: 'minio.local:9000',
    });
    expect(pickProfile(ini, { explicit: 'nope' })).toBeNull();
    expect(pickProfile(parseIni('[x]\na=b\n'), { storageId: 'y' })).toBeNull();
  });
});
