// node --import tsx holder.ts: makes a listener on 127.0.0.1 as baton does (createListener), prints "PORT FD" and
// holds it until killed; a server given _PID and _FD takes it. The steady state's "listener from another process"
// side: a handover without baton.
import { defaults } from '../../supervisor/config.js';
import { createListener } from '../../supervisor/sys/socket.js';

const address = { kind: 'tcp', family: 4, host: '127.0.0.1', port: 0, v6only: false } as const;
const { fd, port } = createListener(address, defaults.backlog, {});
process.stdout.write(`${port} ${fd}\n`);
// Bounded as every load is: a benchmark that dies without killing it leaves it for an hour at most.
setTimeout(() => {}, 3_600_000);
