package main

// Machine facts for the report, and how busy the CPUs were during each
// phase: by this run's processes and by everything else on the machine.

import (
	"github.com/stepcast/stepcast/bench/internal/benchkit"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

type machineFacts struct {
	CPUs     int
	CPUModel string
	MemTotal string
	Go       string
	OS       string
}

func readMachine() machineFacts {
	m := machineFacts{CPUs: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				f := strings.Fields(l)
				if len(f) >= 2 {
					kb, _ := strconv.ParseFloat(f[1], 64)
					m.MemTotal = strconv.FormatFloat(kb/1024/1024, 'f', 1, 64) + " GiB"
				}
			}
		}
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuSnap is the machine's CPU time and this run's processes' CPU time.
type cpuSnap struct {
	at         time.Time
	busy, all  float64 // jiffies, all CPUs
	ours       float64 // CPU seconds of the watched processes
	watchedPID []int
}

func takeCPU(pids []int) cpuSnap {
	s := cpuSnap{at: time.Now(), watchedPID: pids}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i, x := range f[1:] {
			v, _ := strconv.ParseFloat(x, 64)
			s.all += v
			if i != 3 && i != 4 { // idle, iowait
				s.busy += v
			}
		}
	}
	for _, pid := range pids {
		if secs, _, ok := benchkit.ProcessCPU(pid); ok {
			s.ours += secs
		}
	}
	return s
}

// cpuUse is how busy the machine's CPUs were between two snapshots, in
// CPUs (2.0 is both cores of a two-core machine), split into this run's
// watched processes and the rest.
type cpuUse struct {
	Total, Ours, Others float64
}

func cpuBetween(a, b cpuSnap) cpuUse {
	if b.all <= a.all {
		return cpuUse{}
	}
	cpus := float64(runtime.NumCPU())
	total := (b.busy - a.busy) / (b.all - a.all) * cpus
	secs := b.at.Sub(a.at).Seconds()
	ours := (b.ours - a.ours) / secs
	return cpuUse{Total: total, Ours: ours, Others: max(total-ours, 0)}
}
