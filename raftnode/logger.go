package raftnode

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// raftLogger adapts zap to raft.Logger. Raft's Fatal and Panic mean a broken
// invariant inside raft; they log at error level and then panic, because raft
// cannot continue after them and its own goroutine must not carry on.
//
// Raft's Info is the protocol's play by play (every vote sent, cast and
// counted, every configuration it switches to); raftkv logs what an operator
// acts on (leader changes with their term, membership changes, snapshots)
// itself, so raft's Info goes to debug.
type raftLogger struct{ s *zap.SugaredLogger }

func newRaftLogger(lg *zap.Logger) *raftLogger {
	return &raftLogger{s: lg.WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

func (l *raftLogger) Debug(v ...any)                 { l.s.Debug(v...) }
func (l *raftLogger) Debugf(format string, v ...any) { l.s.Debugf(format, v...) }
func (l *raftLogger) Info(v ...any)                  { l.s.Debug(v...) }
func (l *raftLogger) Infof(format string, v ...any)  { l.s.Debugf(format, v...) }
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

// transportLogger logs lg's Info entries at debug, and once stopping
// reports true its warnings too. rafthttp logs every stream it opens and
// closes at info, several lines per peer each time one comes or goes; its
// warnings (a peer became unreachable) stay warnings, except those of this
// node's own shutdown, where every stream closing is expected, and those
// it repeats at every retry that this package reports once (quietRepeats).
func transportLogger(lg *zap.Logger, stopping func() bool) *zap.Logger {
	return lg.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return demotedCore{c, stopping} }))
}

type demotedCore struct {
	zapcore.Core
	stopping func() bool
}

func (c demotedCore) demote(l zapcore.Level) zapcore.Level {
	if l == zapcore.InfoLevel || (l == zapcore.WarnLevel && c.stopping()) {
		return zapcore.DebugLevel
	}
	return l
}

func (c demotedCore) demoteEntry(ent zapcore.Entry) zapcore.Level {
	if quietRepeats(ent) {
		return zapcore.DebugLevel
	}
	return c.demote(ent.Level)
}

func (c demotedCore) Enabled(l zapcore.Level) bool { return c.Core.Enabled(c.demote(l)) }

func (c demotedCore) With(fields []zapcore.Field) zapcore.Core {
	return demotedCore{c.Core.With(fields), c.stopping}
}

func (c demotedCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	ent.Level = c.demoteEntry(ent)
	return c.Core.Check(ent, ce)
}
