/* LD_PRELOAD shim for Debian's linux.uml 6.1 on hosts whose XSAVE area is larger
 * than UML's (e.g. CPUs with AMX). The host kernel's PTRACE_SETREGSET(NT_X86_XSTATE)
 * insists on a buffer of exactly the full XSAVE size, else EFAULT, and UML 6.1 passes
 * its own smaller struct: "userspace - ptrace set fp regs failed, errno = 14" and a
 * panic at the first user process. Upstream fixed UML later (dynamic xstate size).
 *
 * The shim keeps, per UML register buffer, a full-size shadow: GETREGSET fills the
 * shadow from the tracee and hands UML its prefix; SETREGSET lays UML's prefix over
 * the shadow and writes the full size. So every thread's complete vector state
 * (including AVX-512 state UML does not know about) is saved and restored. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif
#define MAXX (64 * 1024)
#define SLOTS 8192

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

static struct { void *key; unsigned char *buf; int filled; } slots[SLOTS];
static size_t full_size;


static unsigned char *shadow(void *key) {
    uintptr_t h = ((uintptr_t)key >> 4) % SLOTS;
    for (int i = 0; i < SLOTS; i++) {
        int j = (h + i) % SLOTS;
        if (slots[j].key == key) return slots[j].buf;
        if (slots[j].key == NULL) {
            slots[j].buf = calloc(1, MAXX);
            if (!slots[j].buf) return NULL;
            slots[j].key = key;
            return slots[j].buf;
        }
    }
    return NULL;
}

static int *filled_of(void *key) {
    uintptr_t h = ((uintptr_t)key >> 4) % SLOTS;
    for (int i = 0; i < SLOTS; i++) {
        int j = (h + i) % SLOTS;
        if (slots[j].key == key) return &slots[j].filled;
        if (slots[j].key == NULL) return NULL;
    }
    return NULL;
}

long ptrace(enum __ptrace_request req, ...) {
    static ptrace_fn real;
    va_list ap;
    va_start(ap, req);
    pid_t pid = va_arg(ap, pid_t);
    void *addr = va_arg(ap, void *);
    void *data = va_arg(ap, void *);
    va_end(ap);
    if (!real) real = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
    if ((req == PTRACE_GETREGSET || req == PTRACE_SETREGSET) &&
        (uintptr_t)addr == NT_X86_XSTATE && data) {
        struct iovec *iov = data;
        unsigned char *buf = shadow(iov->iov_base);
        if (buf) {
            struct iovec full = { buf, MAXX };
            int *filled = filled_of(iov->iov_base);
            if (req == PTRACE_GETREGSET) {
                long r = real(PTRACE_GETREGSET, pid, addr, &full);
                if (r < 0) return r;
                full_size = full.iov_len;
                if (filled) *filled = 1;
                size_t n = iov->iov_len < full.iov_len ? iov->iov_len : full.iov_len;
                memcpy(iov->iov_base, buf, n);
                iov->iov_len = n;
                return r;
            }
            /* SET of a buffer never read back (a new thread's copy): start from the
             * tracee's current full state, then lay UML's part over it. */
            if (!filled || !*filled || !full_size) {
                long r = real(PTRACE_GETREGSET, pid, addr, &full);
                if (r < 0) return real(req, pid, addr, data);
                full_size = full.iov_len;
                if (filled) *filled = 1;
            }
            if (iov->iov_len >= full_size) return real(req, pid, addr, data);
            memcpy(buf, iov->iov_base, iov->iov_len);
            full.iov_len = full_size;
            return real(PTRACE_SETREGSET, pid, addr, &full);
        }
    }
    return real(req, pid, addr, data);
}
