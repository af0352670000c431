// SPDX-License-Identifier: Apache-2.0
/*
 * bound_update: bpf(BPF_MAP_UPDATE_ELEM) for a key and a value that always lie in the same two
 * buffers, the agent's single flow writes (src/datapath/datapath.ts, upsertFlow).
 *
 * Why a Node-API addon beside the koffi binding (native/libbpf.ts): a single write is one
 * syscall of about 1 µs, and through koffi each call also marshals two buffer arguments and the
 * libbpf wrapper; measured in one process on the same keys (bench/flow-writes.ts), koffi reached
 * 65 % of a C loop's rate and this call 82 %. The buffers are resolved to addresses once, when
 * bound; each write passes only the map fd and the flags.
 *
 *   const b = bind(key, value, stampAt)
 *                                 an External holding both buffers alive and their addresses;
 *                                 stampAt: the byte offset of a u64 in value for the write's
 *                                 time, or -1
 *   update(b, fd, flags, stamp)   0, or a negative errno, as libbpf returns it; with stamp, the
 *                                 u64 at stampAt first gets CLOCK_MONOTONIC in ns (the clock of
 *                                 the BPF programs' bpf_ktime_get_*ns): read here it costs a
 *                                 vDSO call, read in JavaScript a BigInt per write
 *
 * No state is global: a binding belongs to the JavaScript environment that made it (worker
 * threads load their own), and Node-API frees it with the External.
 */
#define NAPI_VERSION 8
#include <errno.h>
#include <linux/bpf.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct binding {
	void *key;
	void *value;
	__u64 *stamp;       /* in value, 8-aligned; NULL: no stamp */
	napi_ref key_ref;   /* the buffers stay alive (and where they are) while bound */
	napi_ref value_ref;
};

static napi_value fail(napi_env env, const char *code, const char *message)
{
	napi_throw_type_error(env, code, message);
	return NULL;
}

/* The data of a Buffer or Uint8Array. Asking V8 for it moves a small on-heap array to its own
 * backing store, which never moves again: the address stays good for the binding's life. */
static int buffer_data(napi_env env, napi_value v, void **data, size_t *len)
{
	bool is_typed;

	if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed)
		return -1;
	return napi_get_buffer_info(env, v, data, len) == napi_ok ? 0 : -1;
}

static void finalize(napi_env env, void *data, void *hint)
{
	struct binding *b = data;

	(void)hint;
	napi_delete_reference(env, b->key_ref);
	napi_delete_reference(env, b->value_ref);
	free(b);
}

static napi_value bind(napi_env env, napi_callback_info info)
{
	size_t argc = 3, key_len, value_len;
	napi_value argv[3], out;
	struct binding *b;
	int32_t stamp_at;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3 ||
	    napi_get_value_int32(env, argv[2], &stamp_at) != napi_ok)
		return fail(env, "WS_NATIVE_ARGS", "bind(key, value, stampAt): two buffers and an offset");
	b = calloc(1, sizeof(*b));
	if (!b)
		return fail(env, "WS_NATIVE_NOMEM", "bind: out of memory");
	if (buffer_data(env, argv[0], &b->key, &key_len) || buffer_data(env, argv[1], &b->value, &value_len) ||
	    key_len == 0 || value_len == 0) {
		free(b);
		return fail(env, "WS_NATIVE_ARGS", "bind(key, value, stampAt): key and value must be non-empty Uint8Arrays");
	}
	if (stamp_at >= 0) {
		char *at = (char *)b->value + stamp_at;

		if ((size_t)stamp_at + sizeof(__u64) > value_len || (unsigned long)at % sizeof(__u64)) {
			free(b);
			return fail(env, "WS_NATIVE_ARGS", "bind: stampAt must be an 8-aligned u64 inside value");
		}
		b->stamp = (__u64 *)at;
	}
	if (napi_create_reference(env, argv[0], 1, &b->key_ref) != napi_ok ||
	    napi_create_reference(env, argv[1], 1, &b->value_ref) != napi_ok ||
	    napi_create_external(env, b, finalize, NULL, &out) != napi_ok) {
		/* Let go of what was made before the failure (a strong reference would hold the
		 * buffer until the environment ends). */
		if (b->key_ref)
			napi_delete_reference(env, b->key_ref);
		if (b->value_ref)
			napi_delete_reference(env, b->value_ref);
		free(b);
		return fail(env, "WS_NATIVE_NOMEM", "bind: cannot hold the buffers");
	}
	return out;
}

static napi_value update(napi_env env, napi_callback_info info)
{
	size_t argc = 4;
	napi_value argv[4], out;
	struct binding *b;
	int32_t fd;
	int64_t flags;
	bool stamp;
	union bpf_attr attr;
	long rc;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4 ||
	    napi_get_value_external(env, argv[0], (void **)&b) != napi_ok ||
	    napi_get_value_int32(env, argv[1], &fd) != napi_ok ||
	    napi_get_value_int64(env, argv[2], &flags) != napi_ok ||
	    napi_get_value_bool(env, argv[3], &stamp) != napi_ok)
		return fail(env, "WS_NATIVE_ARGS", "update(binding, fd, flags, stamp)");
	if (stamp) {
		struct timespec ts;

		if (!b->stamp)
			return fail(env, "WS_NATIVE_ARGS", "update: this binding has no stamp");
		clock_gettime(CLOCK_MONOTONIC, &ts);
		*b->stamp = (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
	}
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = (__u32)fd;
	attr.key = (__u64)(unsigned long)b->key;
	attr.value = (__u64)(unsigned long)b->value;
	attr.flags = (__u64)flags;
	rc = syscall(__NR_bpf, BPF_MAP_UPDATE_ELEM, &attr, sizeof(attr));
	napi_create_int32(env, rc < 0 ? -errno : 0, &out);
	return out;
}

NAPI_MODULE_INIT()
{
	napi_value fn;

	if (napi_create_function(env, "bind", NAPI_AUTO_LENGTH, bind, NULL, &fn) != napi_ok ||
	    napi_set_named_property(env, exports, "bind", fn) != napi_ok ||
	    napi_create_function(env, "update", NAPI_AUTO_LENGTH, update, NULL, &fn) != napi_ok ||
	    napi_set_named_property(env, exports, "update", fn) != napi_ok)
		return NULL;
	return exports;
}
