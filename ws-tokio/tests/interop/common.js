'use strict';
// Shared helpers for the Node scripts of run.sh: PASS/FAIL reporting and bounded waits.

let failed = 0;

function report(name, err) {
  if (err == null) {
    console.log(`PASS ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL ${name}: ${err}`);
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms${what ? ` (${what})` : ''}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// Runs `fn` (async, returns null on success or an error string) as one check.
async function check(name, fn, ms = 30000) {
  let err;
  try {
    err = await withTimeout(Promise.resolve().then(fn), ms, name);
  } catch (e) {
    err = `${e && e.message ? e.message : e}`;
  }
  report(name, err == null ? null : err);
  return err == null;
}

function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function exitCode() {
  return failed ? 1 : 0;
}

module.exports = { report, check, withTimeout, pattern, sleep, exitCode };
