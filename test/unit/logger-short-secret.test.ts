// Issue 10 §14: a secret registered with the logger was replaced wherever its string appeared.
// A short one ("s3", "backup", a PIN-like "1234") then mangled every line that happened to hold
// it, and where "[redacted]" appeared gave the secret away to anyone reading the log. Secrets are
// redacted by field (and by the patterns of headers, query strings and INI lines); the match by
// value stays only as a last net for secrets too long to occur by chance.
import { afterEach, describe, expect, it } from 'vitest';
import { MIN_VALUE_REDACTION, clearRegisteredSecrets, createLogger, redact, redactFields, registerSecret } from '../../host/src/util/logger.js';

afterEach(() => clearRegisteredSecrets());

describe('short secrets', () => {
  it('are not searched for in text: nothing is mangled, nothing is revealed by where it was cut', () => {
    registerSecret('s3');
    registerSecret('1234');
    const line = 'bucket s3-backups at s3.example.com, 1234 objects';
    expect(redact(line)).toBe(line);
  });

  it('are still redacted by field and by the secret-bearing patterns', () => {
    registerSecret('1234');
    expect(redactFields({ secret_key: '1234', password: '1234', count: 1234 })).toEqual({ secret_key: '[redacted]', password: '[redacted]', count: 1234 });
    expect(redact('secret_key=1234 aws_secret_access_key = 1234')).toBe('secret_key=[redacted] aws_secret_access_key = [redacted]');
    const lines: string[] = [];
    createLogger({ file: null, echo: true, stderr: { write: (s: string) => lines.push(s) } }).info('probe', { secretKey: '1234', objects: 1234 });
    expect(lines[0]).toMatch(/secretKey=\[redacted\] objects=1234/);
  });

  it(`long ones (>= ${MIN_VALUE_REDACTION} characters) are also caught by value, as a last net`, () => {
    registerSecret('wJalrXUtnFEMI/K7MDENG+bPxRfiCY');
    expect(redact('leaked wJalrXUtnFEMI/K7MDENG+bPxRfiCY here')).toBe('leaked [redacted] here');
  });
});
