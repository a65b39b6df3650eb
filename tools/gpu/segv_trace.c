/* LD_PRELOAD helper: on SIGSEGV/SIGBUS/SIGILL print the faulting address and a native
 * backtrace (library + offset per frame) to stderr, then die with the signal.
 * The device image has no gdb; build: gcc -shared -fPIC -O0 -g segv_trace.c -o segv.so -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void report(int sig, siginfo_t *info, void *ctx) {
  (void)ctx;
  void *frames[64];
  int n = backtrace(frames, 64);
  fprintf(stderr, "\n[segv_trace] signal %d at address %p, %d frames\n", sig, info->si_addr, n);
  for (int i = 0; i < n; ++i) {
    Dl_info dl;
    if (dladdr(frames[i], &dl) && dl.dli_fname) {
      fprintf(stderr, "[segv_trace] #%d %p %s+0x%lx (%s)\n", i, frames[i], dl.dli_fname,
              (unsigned long)((char *)frames[i] - (char *)dl.dli_fbase),
              dl.dli_sname ? dl.dli_sname : "?");
    } else {
      fprintf(stderr, "[segv_trace] #%d %p ?\n", i, frames[i]);
    }
  }
  Dl_info fault;
  if (dladdr(info->si_addr, &fault) && fault.dli_fname) {
    fprintf(stderr, "[segv_trace] fault address is in %s+0x%lx\n", fault.dli_fname,
            (unsigned long)((char *)info->si_addr - (char *)fault.dli_fbase));
  }
  fflush(stderr);
  signal(sig, SIG_DFL);
  raise(sig);
}

__attribute__((constructor)) static void install(void);
static void install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = report;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
  sigaction(SIGILL, &sa, NULL);
}

/* Re-install (e.g. after a library replaced the handlers); callable through ctypes. */
void segv_trace_install(void) { install(); }
