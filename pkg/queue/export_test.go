package queue

// ServerAtLeast exposes the version check to the external tests.
var ServerAtLeast = serverAtLeast
