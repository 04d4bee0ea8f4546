import { Baton, childrenOf, fdCount, fixture } from './helpers/baton.js';
import { needs } from './helpers/needs.js';

// Root: it reads baton's /proc/PID/fd (or maps), which belong to root once baton is not dumpable.
needs('root')('no leaks: fd and child counts after 50 upgrades equal those after the first', async (t) => {
  const baton = new Baton(['--listen', '127.0.0.1:0', '--drain', '0', '--', 'node', fixture]);
  const settle = async (n: number) => {
    await baton.event('exit', n - 1);
    await new Promise((r) => setTimeout(r, 100));
  };
  try {
    await baton.event('active', 1);
    await baton.upgradeTo(2);
    await settle(2);
    const fds = fdCount(baton.pid);
    const children = childrenOf(baton.pid).length;
    for (let n = 3; n <= 51; n++) await baton.upgradeTo(n);
    await settle(51);
    t.is(fdCount(baton.pid), fds);
    t.is(childrenOf(baton.pid).length, children);
    t.is(children, 1);
  } finally {
    await baton.stop();
  }
});
