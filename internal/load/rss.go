package load

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PeakRSS returns the peak resident set size of process pid in bytes
// (VmHWM in /proc/<pid>/status). It covers the process's whole life, or the
// time since ResetPeakRSS.
func PeakRSS(pid int) (int64, error) { return procStatusKB(pid, "VmHWM") }

// CurrentRSS returns the resident set size of process pid in bytes (VmRSS).
func CurrentRSS(pid int) (int64, error) { return procStatusKB(pid, "VmRSS") }

// ResetPeakRSS sets pid's VmHWM back to its current RSS (Linux >= 4.0), so
// that a later PeakRSS reflects only what happened since, e.g. the load
// rather than start-up. It needs permission to write /proc/<pid>/clear_refs.
func ResetPeakRSS(pid int) error {
	// "5" is the clear_refs command that resets the peak RSS counter.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("load: reset peak RSS of pid %d: %w", pid, err)
	}
	return nil
}

func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("load: %s of pid %d: %w", field, pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	prefix := field + ":"
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line[len(prefix):])
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("load: %s of pid %d: unexpected line %q", field, pid, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("load: %s of pid %d: %w", field, pid, err)
		}
		return kb * 1024, nil
	}
	// Kernel threads and zombies have no Vm* lines.
	return 0, fmt.Errorf("load: %s of pid %d: not in /proc/%d/status", field, pid, pid)
}
