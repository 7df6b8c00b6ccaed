package raftnode

import (
	"fmt"

	"go.uber.org/zap"
)

// raftLogger adapts zap to raft.Logger. Raft's Fatal and Panic mean a broken
// invariant inside raft; they log at error level and then panic, because raft
// cannot continue after them and its own goroutine must not carry on.
type raftLogger struct{ s *zap.SugaredLogger }

func newRaftLogger(lg *zap.Logger) *raftLogger {
	return &raftLogger{s: lg.WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

func (l *raftLogger) Debug(v ...any)                 { l.s.Debug(v...) }
func (l *raftLogger) Debugf(format string, v ...any) { l.s.Debugf(format, v...) }
func (l *raftLogger) Info(v ...any)                  { l.s.Info(v...) }
func (l *raftLogger) Infof(format string, v ...any)  { l.s.Infof(format, v...) }
func (l *raftLogger) Warning(v ...any)               { l.s.Warn(v...) }
func (l *raftLogger) Warningf(format string, v ...any) {
	l.s.Warnf(format, v...)
}
func (l *raftLogger) Error(v ...any)                 { l.s.Error(v...) }
func (l *raftLogger) Errorf(format string, v ...any) { l.s.Errorf(format, v...) }
func (l *raftLogger) Fatal(v ...any)                 { l.Panic(v...) }
func (l *raftLogger) Fatalf(format string, v ...any) { l.Panicf(format, v...) }
func (l *raftLogger) Panic(v ...any) {
	msg := fmt.Sprint(v...)
	l.s.Error(msg)
	panic(msg)
}
func (l *raftLogger) Panicf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.s.Error(msg)
	panic(msg)
}
