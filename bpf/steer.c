// SPDX-License-Identifier: GPL-2.0 OR MIT
// baton steering: an sk_lookup program that sends connections for the rules' addresses and ports
// to the socket in a SOCKMAP slot. Built by `npm run build:bpf`; the object is committed beside it.
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10

// LPM trie key: prefixlen counts bits of everything after it. protocol, family and port are
// always matched whole (32 bits), then `prefixlen - 32` bits of the address.
struct rule_key {
	__u32 prefixlen;
	__u8 protocol;
	__u8 family;
	__be16 port;
	__u8 addr[16];
};

struct rule_value {
	__u32 slot;
	__u32 rule;
};

struct counters {
	__u64 steered;
	__u64 nosock;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__type(key, struct rule_key);
	__type(value, struct rule_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct counters);
} counters SEC(".maps");

SEC("sk_lookup")
int baton_steer(struct bpf_sk_lookup *ctx)
{
	struct rule_key key = {
		.prefixlen = 32 + 128,
		.protocol = ctx->protocol,
		.family = ctx->family,
		.port = bpf_htons(ctx->local_port),
	};
	if (ctx->family == AF_INET) {
		__builtin_memcpy(key.addr, &ctx->local_ip4, 4);
	} else if (ctx->family == AF_INET6) {
		__builtin_memcpy(key.addr, &ctx->local_ip6[0], 16);
	} else {
		return SK_PASS;
	}

	struct rule_value *rule = bpf_map_lookup_elem(&rules, &key);
	if (!rule)
		return SK_PASS; // not ours: the kernel's normal lookup

	struct counters *count = bpf_map_lookup_elem(&counters, &rule->rule);
	struct bpf_sock *sk = bpf_map_lookup_elem(&slots, &rule->slot);
	if (!sk) {
		// The slot is empty: drop rather than let another socket take the connection.
		if (count)
			count->nosock++;
		return SK_DROP;
	}
	long err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (count) {
		if (err)
			count->nosock++;
		else
			count->steered++;
	}
	return err ? SK_DROP : SK_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
