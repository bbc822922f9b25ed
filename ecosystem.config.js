// PM2 process file: `pm2 start ecosystem.config.js`, `pm2 scale worker N`.
//
// - api-server: 1 instance; worker: WORKER_INSTANCES instances (default 2).
// - Both run the release binaries (`cargo build --release`), from this directory, or those in
//   SELLERSYNC_BIN_DIR when set.
// - Environment: the process environment, plus SELLERSYNC_ENV_FILE (default deploy/sellersync.env
//   when it exists; a SELLERSYNC_ENV_FILE that does not exist is an error naming it), a KEY=value
//   file as used by systemd's EnvironmentFile. SELLERSYNC_ENV defaults to production.
// - Metrics: when METRICS_PORT is set (shell or environment file, not 0), it is the first worker
//   instance's /metrics and /healthz port and each further instance gets the next one (PM2's
//   increment_var, also after `pm2 scale`), as the systemd units give worker@N port 946N.
// - kill_timeout is longer than the worker's drain timeout (SELLERSYNC_WORKER__DRAIN_TIMEOUT_MS,
//   default 30 s) so SIGTERM lets running jobs finish; restarts back off exponentially.
// - Exit status 78 is a configuration error (the log names the setting): PM2 stops the process
//   instead of restarting it (stop_exit_codes), as systemd's RestartPreventExitStatus=78 does.
const fs = require('fs');
const path = require('path');

// The environment file: SELLERSYNC_ENV_FILE must exist when it is set (a mistyped path must not
// silently leave the settings out); the default deploy/sellersync.env is optional.
function readEnvFile(file, named) {
  if (!fs.existsSync(file)) {
    if (named) throw new Error(`SELLERSYNC_ENV_FILE: ${file} not found`);
    return {};
  }
  const env = {};
  for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || !line.includes('=')) continue;
    const at = line.indexOf('=');
    env[line.slice(0, at).trim()] = line.slice(at + 1).trim().replace(/^"(.*)"$/, '$1');
  }
  return env;
}

const root = __dirname;
// A configuration error (sysexits' EX_CONFIG): restarting cannot help.
const CONFIG_ERROR = 78;
const named = Boolean(process.env.SELLERSYNC_ENV_FILE);
const fileEnv = readEnvFile(named ? process.env.SELLERSYNC_ENV_FILE : path.join(root, 'deploy', 'sellersync.env'), named);
// Production unless the shell or the environment file says otherwise: a missing SELLERSYNC_ENV
// must not silently mean development (which skips the secret checks).
const env = {
  SELLERSYNC_ENV: process.env.SELLERSYNC_ENV || 'production',
  SELLERSYNC_CONFIG_DIR: path.join(root, 'config'),
  ...fileEnv,
};
const instances = Number.parseInt(process.env.WORKER_INSTANCES || fileEnv.WORKER_INSTANCES || '2', 10);
const metricsPort = Number.parseInt(process.env.METRICS_PORT || fileEnv.METRICS_PORT || '0', 10);
const perInstancePorts = metricsPort > 0 ? { increment_var: 'METRICS_PORT' } : {};
const drainMs = Number.parseInt(fileEnv.SELLERSYNC_WORKER__DRAIN_TIMEOUT_MS || '30000', 10);
const binDir = process.env.SELLERSYNC_BIN_DIR || path.join(root, 'target', 'release');
const logDir = process.env.SELLERSYNC_LOG_DIR || path.join(root, 'var', 'log', 'pm2');
fs.mkdirSync(logDir, { recursive: true });

module.exports = {
  apps: [
    {
      name: 'api-server',
      script: path.join(binDir, 'sellersync-api'),
      cwd: root,
      exec_mode: 'fork',
      instances: 1,
      env,
      out_file: path.join(logDir, 'api-server.out.log'),
      error_file: path.join(logDir, 'api-server.err.log'),
      merge_logs: true,
      kill_timeout: 15000,
      exp_backoff_restart_delay: 200,
      max_restarts: 50,
      stop_exit_codes: [CONFIG_ERROR],
    },
    {
      name: 'worker',
      script: path.join(binDir, 'sellersync-worker'),
      cwd: root,
      exec_mode: 'fork',
      instances,
      env: metricsPort > 0 ? { ...env, METRICS_PORT: metricsPort } : env,
      ...perInstancePorts,
      out_file: path.join(logDir, 'worker.out.log'),
      error_file: path.join(logDir, 'worker.err.log'),
      merge_logs: true,
      kill_timeout: drainMs + 15000,
      exp_backoff_restart_delay: 200,
      max_restarts: 50,
      stop_exit_codes: [CONFIG_ERROR],
    },
  ],
};
