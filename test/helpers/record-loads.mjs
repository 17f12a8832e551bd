// node --import ./record-loads.mjs …: appends the URL of every ES module the process loads (the
// loader's own hook thread sees them, CommonJS files required from them excepted) to the file
// named by PVE_S3_TEST_LOADS, one a line. For tests that check what a command loads.
import { register } from 'node:module';

if (process.env.PVE_S3_TEST_LOADS) {
  register(
    `data:text/javascript,${encodeURIComponent(`import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(${JSON.stringify(process.env.PVE_S3_TEST_LOADS)}, url + '\\n');
  return next(url, context);
}`)}`,
  );
}
