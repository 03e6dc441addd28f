// Starts a real `weir serve` for a test file: WEIR_BIN (exported by scripts/test.sh,
// which builds it), a fresh data directory, a free 127.0.0.1 port chosen by the OS.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

// Generous for a loaded CI machine; weir binds in milliseconds on a fresh directory.
const START_TIMEOUT_MS = 30000;
const LISTENING = 'kafka listening addr=';

async function startWeir() {
  const bin = process.env.WEIR_BIN;
  if (!bin) throw new Error('WEIR_BIN is not set: run scripts/test.sh, or cargo build and export WEIR_BIN');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-kafkajs-'));
  const env = { ...process.env, WEIR_LOG: 'info' };
  delete env.WEIR_DATA_DIR;
  delete env.WEIR_CONFIG;
  const child = spawn(bin, ['serve', '--data-dir', path.join(dir, 'data'), '--kafka-addr', '127.0.0.1:0'], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = [];
  let stopping = false;
  const bootstrap = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`weir did not listen in time:\n${log.join('\n')}`)), START_TIMEOUT_MS);
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      log.push(line);
      const at = line.indexOf(LISTENING);
      if (at >= 0) {
        clearTimeout(timer);
        resolve(line.slice(at + LISTENING.length).split(/\s/)[0]);
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`weir exited (${code ?? signal}) before listening:\n${log.join('\n')}`));
    });
  });
  let exited = null;
  child.on('exit', (code, signal) => {
    exited = code ?? signal;
  });
  return {
    bootstrap,
    log,
    // Kills weir and its data; throws if it had crashed or logged a panic meanwhile.
    async stop() {
      const crashed = exited !== null && !stopping ? `weir exited on its own (${exited})` : null;
      const panic = log.find((line) => line.includes('panicked at'));
      stopping = true;
      if (exited === null) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await gone;
      }
      fs.rmSync(dir, { recursive: true, force: true });
      if (crashed || panic) throw new Error(`${crashed ?? panic}\n${log.slice(-100).join('\n')}`);
    },
  };
}

module.exports = { startWeir };
