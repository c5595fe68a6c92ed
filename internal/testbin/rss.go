package testbin

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// PeakRSS is what PollRSS saw of a process, in KiB.
type PeakRSS struct {
	// HWMKiB is the kernel's high-water mark of the process's resident set
	// (VmHWM) at the last sample.
	HWMKiB int
	// AnonKiB and FileKiB are the largest RssAnon and RssFile sampled.
	AnonKiB, FileKiB int
}

func (p PeakRSS) String() string {
	return fmt.Sprintf("peak RSS (VmHWM) %.1f MiB; sampled peaks RssAnon %.1f MiB, RssFile %.1f MiB",
		mib(p.HWMKiB), mib(p.AnonKiB), mib(p.FileKiB))
}

// MiB is the high-water mark in MiB.
func (p PeakRSS) MiB() float64 { return mib(p.HWMKiB) }

func mib(kib int) float64 { return float64(kib) / 1024 }

// PollRSS samples /proc/<pid>/status every 2 ms until stop is closed and
// returns the peak RSS (VmHWM, the kernel's high-water mark of the process
// since its exec) and the largest RssAnon and RssFile seen. A process that
// has exited keeps what was sampled before.
//
// The wait status's ru_maxrss is no use for a child of a test: Linux
// carries the parent's high-water mark across fork and exec, so it reports
// the test process (which may embed a nats-server holding hundreds of MB),
// not the child.
func PollRSS(pid int, stop <-chan struct{}) PeakRSS {
	var peak PeakRSS
	tk := time.NewTicker(2 * time.Millisecond)
	defer tk.Stop()
	for {
		if now, err := RSS(pid); err == nil {
			peak = PeakRSS{HWMKiB: max(peak.HWMKiB, now.HWMKiB), AnonKiB: max(peak.AnonKiB, now.AnonKiB), FileKiB: max(peak.FileKiB, now.FileKiB)}
		}
		select {
		case <-stop:
			return peak
		case <-tk.C:
		}
	}
}

// RSS reads a process's VmHWM, RssAnon and RssFile once.
func RSS(pid int) (PeakRSS, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return PeakRSS{}, err
	}
	var p PeakRSS
	fields := map[string]*int{"VmHWM": &p.HWMKiB, "RssAnon": &p.AnonKiB, "RssFile": &p.FileKiB}
	for _, line := range strings.Split(string(data), "\n") {
		for k, dst := range fields {
			if v, ok := strings.CutPrefix(line, k+":"); ok {
				_, _ = fmt.Sscanf(strings.TrimSpace(v), "%d", dst)
			}
		}
	}
	return p, nil
}
