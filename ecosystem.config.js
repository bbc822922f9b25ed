// PM2 process file: `pm2 start ecosystem.config.js`.
// Placeholder until the operations issue: runs the release binaries built by `cargo build --release`.
// Scale workers with `pm2 scale worker N`. kill_timeout is longer than the worker's drain timeout
// so that SIGTERM lets in-flight jobs finish.
const instances = Number.parseInt(process.env.WORKER_INSTANCES || '2', 10);

module.exports = {
  apps: [
    {
      name: 'api-server',
      script: './target/release/sellersync-api',
      exec_mode: 'fork',
      instances: 1,
      env: { SELLERSYNC_CONFIG_DIR: './config' },
      kill_timeout: 15000,
    },
    {
      name: 'worker',
      script: './target/release/sellersync-worker',
      exec_mode: 'fork',
      instances,
      env: { SELLERSYNC_CONFIG_DIR: './config' },
      kill_timeout: 60000,
    },
  ],
};
