package raftnode

import (
	"slices"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestTransportLogger checks that the transport's info chatter is hidden at
// the default level and shown at debug, while its warnings stay warnings
// until the node stops.
func TestTransportLogger(t *testing.T) {
	for _, tc := range []struct {
		level zapcore.Level
		want  []zapcore.Level
	}{
		{zapcore.InfoLevel, []zapcore.Level{zapcore.WarnLevel}},
		{zapcore.DebugLevel, []zapcore.Level{zapcore.DebugLevel, zapcore.WarnLevel, zapcore.DebugLevel}},
	} {
		core, logs := observer.New(tc.level)
		stopping := false
		lg := transportLogger(zap.New(core), func() bool { return stopping }).With(zap.String("peer", "2"))
		lg.Info("started streaming with peer")
		lg.Warn("lost TCP streaming connection with remote peer")
		stopping = true
		lg.Warn("closed TCP streaming connection with remote peer")
		var got []zapcore.Level
		for _, e := range logs.All() {
			got = append(got, e.Level)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("at %v: logged at %v, want %v", tc.level, got, tc.want)
		}
	}
}
