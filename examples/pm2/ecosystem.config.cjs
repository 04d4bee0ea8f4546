// baton beside pm2: pm2 keeps baton alive, baton keeps the socket. `pm2 reload` would restart
// baton itself (a stop and a start); upgrade through baton instead:
//   pm2 start examples/pm2/ecosystem.config.cjs
//   npx baton reload --wait --pid-file /tmp/app-baton.pid      # zero downtime
module.exports = {
  apps: [
    {
      name: 'app',
      script: 'node_modules/.bin/baton',
      args: '--listen 127.0.0.1:8080 --pid-file /tmp/app-baton.pid -- node examples/http-server.mjs',
      interpreter: 'none',
      kill_timeout: 35000, // longer than baton's --kill-timeout, so baton drains before pm2 kills it
      autorestart: true,
    },
  ],
};
