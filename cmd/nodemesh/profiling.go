package main

import "runtime"

// sampleHeapOnlyIfServed turns the runtime's heap-profile sampling off
// unless --pprof serves the profiles. Go samples an allocation every
// 512 KiB by default and unwinds its stack each time, which keeps the
// unwinding tables of every allocating function resident; nobody can read
// those samples without --pprof. With 1,000 services, the controller's
// file-backed RSS was 23.1 MiB without the sampling against 25.4–25.7 MiB
// with it (integration/bench/results/controller-2026-11-25.md).
func sampleHeapOnlyIfServed(pprof bool) {
	if !pprof {
		runtime.MemProfileRate = 0
	}
}
