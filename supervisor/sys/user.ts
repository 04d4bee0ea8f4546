import koffi from 'koffi';
import { usageError } from '../errors.js';
import { library } from './libc.js';

const Passwd = koffi.struct('baton_passwd', {
  pw_name: 'char *',
  pw_passwd: 'char *',
  pw_uid: 'uint32',
  pw_gid: 'uint32',
  pw_gecos: 'char *',
  pw_dir: 'char *',
  pw_shell: 'char *',
});
const Group = koffi.struct('baton_group', { gr_name: 'char *', gr_passwd: 'char *', gr_gid: 'uint32' });
const getpwnam = library.func('baton_passwd *getpwnam(const char *)');
const getpwuid = library.func('baton_passwd *getpwuid(uint32)');
const getgrnam = library.func('baton_group *getgrnam(const char *)');
const getgrouplist = library.func('int getgrouplist(const char *, uint32, _Out_ uint32 *, _Inout_ int *)');

/** The --user generations run as: its passwd entry, or only a uid (then gid = uid and no name). */
export interface User {
  uid: number;
  gid: number;
  /** The passwd name: the user's supplementary groups come from it. */
  name?: string;
  home: string;
  shell: string;
}

/** A user name or uid, resolved through NSS; gid is the user's primary group. */
export function lookupUser(spec: string): User {
  const p = /^\d+$/.test(spec) ? getpwuid(Number(spec)) : getpwnam(spec);
  if (!p) {
    if (/^\d+$/.test(spec)) return { uid: Number(spec), gid: Number(spec), home: '/', shell: '/bin/sh' };
    throw usageError(`no such user: --user ${spec}`, 'give an existing user name or a numeric uid');
  }
  const pw = koffi.decode(p, Passwd) as { pw_name: string; pw_uid: number; pw_gid: number } & Record<string, string>;
  return { uid: pw.pw_uid, gid: pw.pw_gid, name: pw.pw_name, home: pw.pw_dir || '/', shell: pw.pw_shell || '/bin/sh' };
}

export function lookupGroup(spec: string): number {
  if (/^\d+$/.test(spec)) return Number(spec);
  const g = getgrnam(spec);
  if (!g) throw usageError(`no such group: --group ${spec}`, 'give an existing group name or a numeric gid');
  return (koffi.decode(g, Group) as { gr_gid: number }).gr_gid;
}

/** Linux's NGROUPS_MAX: no process has more supplementary groups. */
const GROUPS_MAX = 65536;

/** The groups initgroups(3) gives user `name` with primary group `gid`: `gid` and every group that lists the user. */
export function groupList(name: string, gid: number): number[] {
  const groups = new Uint32Array(GROUPS_MAX);
  const count = [GROUPS_MAX];
  if (getgrouplist(name, gid, groups, count) === -1) {
    throw usageError(`user ${name} is in more than ${GROUPS_MAX} groups`, 'remove it from some groups in /etc/group');
  }
  return [...groups.subarray(0, count[0])];
}
