import koffi from 'koffi';
import { usageError } from '../errors.js';
import { library } from './libc.js';

const Passwd = koffi.struct('baton_passwd', {
  pw_name: 'char *',
  pw_passwd: 'char *',
  pw_uid: 'uint32',
  pw_gid: 'uint32',
});
const Group = koffi.struct('baton_group', { gr_name: 'char *', gr_passwd: 'char *', gr_gid: 'uint32' });
const getpwnam = library.func('baton_passwd *getpwnam(const char *)');
const getpwuid = library.func('baton_passwd *getpwuid(uint32)');
const getgrnam = library.func('baton_group *getgrnam(const char *)');

/** A user name or uid, resolved through NSS; gid is the user's primary group. */
export function lookupUser(spec: string): { uid: number; gid: number } {
  const p = /^\d+$/.test(spec) ? getpwuid(Number(spec)) : getpwnam(spec);
  if (!p) {
    if (/^\d+$/.test(spec)) return { uid: Number(spec), gid: Number(spec) };
    throw usageError(`no such user: --user ${spec}`, 'give an existing user name or a numeric uid');
  }
  const pw = koffi.decode(p, Passwd) as { pw_uid: number; pw_gid: number };
  return { uid: pw.pw_uid, gid: pw.pw_gid };
}

export function lookupGroup(spec: string): number {
  if (/^\d+$/.test(spec)) return Number(spec);
  const g = getgrnam(spec);
  if (!g) throw usageError(`no such group: --group ${spec}`, 'give an existing group name or a numeric gid');
  return (koffi.decode(g, Group) as { gr_gid: number }).gr_gid;
}
