/**
 * The release version, as a constant: installed trees ship no package.json next to the code.
 * test/unit/version.test.ts keeps it equal to package.json's.
 */
export const VERSION = '0.1.0';
