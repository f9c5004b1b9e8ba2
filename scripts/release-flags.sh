# Sourced by the scripts that build release binaries. Runtime exclusivity checks cost ~20k instructions per
# proxied request when left on in SwiftNIO and the other dependencies (PERFORMANCE.md; BENCHMARKS.md); our own
# data-path targets turn them off in Package.swift, and this turns them off for every module of a release build.
RELEASE_FLAGS="-Xswiftc -enforce-exclusivity=unchecked"
