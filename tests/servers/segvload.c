/*
 * segvload.c - a shared object whose constructor dies of a real SIGSEGV (a
 * store through a null pointer). integration/crash.sh has Node load it
 * with process.dlopen() while it serves a request, the way a native
 * addon's fault kills Node: the fault goes to Node's own SIGSEGV handler
 * (installed at startup, before we install ours), which puts the default
 * back and raises the signal again.
 */
/* Null, but the compiler cannot know it (a store through a literal null
 * pointer is undefined, and GCC dropped the whole constructor). */
int *volatile segvload_nowhere;

__attribute__((constructor)) static void segvload(void)
{
	*segvload_nowhere = 42;
}
