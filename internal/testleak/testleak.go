// Package testleak runs a package's tests under goleak, ignoring the one
// goroutine salvo cannot stop from leaking.
//
// nats.go's JetStream ObjectStore.Put publishes its chunks through a JetStream
// context of its own and tears that context down when it returns. Setting up
// async publishing starts a goroutine that reads the context's status channel
// under a lock; when the teardown runs first it clears the channel, and the
// goroutine then waits on a nil channel for the life of the process
// (jetstream/publish.go resetPendingAcksOnReconnect, nats.go v1.55.0). The
// gateway's uploads and the worker's results stored by reference both go
// through Put, so a test run can end with one such goroutine per Put that lost
// that race. Nothing salvo holds can release it; every other goroutine is
// still checked.
package testleak

import "go.uber.org/goleak"

// Options are the goleak options every salvo test package uses.
func Options() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
	}
}

// VerifyTestMain runs m and fails the package when goroutines other than the
// one described above outlive its tests.
func VerifyTestMain(m goleak.TestingM) { goleak.VerifyTestMain(m, Options()...) }

// VerifyTestMainThen is VerifyTestMain with after run between the tests and
// the check (removing a binary the tests built, say).
func VerifyTestMainThen(m goleak.TestingM, after func()) {
	goleak.VerifyTestMain(runThen{m: m, after: after}, Options()...)
}

// runThen runs m, then after.
type runThen struct {
	m     goleak.TestingM
	after func()
}

func (r runThen) Run() int {
	code := r.m.Run()
	r.after()
	return code
}
