package load

import (
	"os"
	"testing"
)

func TestRSSOfSelf(t *testing.T) {
	cur, err := CurrentRSS(os.Getpid())
	if err != nil || cur <= 0 {
		t.Fatalf("CurrentRSS = %d, %v", cur, err)
	}
	// Read after CurrentRSS: the high-water mark can only have grown.
	peak, err := PeakRSS(os.Getpid())
	if err != nil || peak <= 0 {
		t.Fatalf("PeakRSS = %d, %v", peak, err)
	}
	t.Logf("test process: RSS %d KiB, peak %d KiB", cur>>10, peak>>10)
	if err := ResetPeakRSS(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if after, err := PeakRSS(os.Getpid()); err != nil || after <= 0 {
		t.Fatalf("PeakRSS after reset = %d, %v", after, err)
	}
	if _, err := PeakRSS(-1); err == nil {
		t.Error("PeakRSS(-1) succeeded")
	}
}
