# Sourced by the scripts that build release binaries. Runtime exclusivity checks cost ~20k instructions per
# proxied request when left on in SwiftNIO and the other dependencies (PERFORMANCE.md; BENCHMARKS.md); our own
# data-path targets turn them off in Package.swift, and this turns them off for every module of a release build.
# The Swift runtime and Foundation are linked in statically, as the container images ship them: no dynamic
# loader work for a dozen Swift libraries at start (validate of the seed config 23 -> 15 ms here), direct calls
# instead of PLT stubs for every retain and release (~1.3k fewer instructions per proxied request), and fewer
# resident file pages (idle RSS 39.5 -> 37.2 MB).
RELEASE_FLAGS="-Xswiftc -enforce-exclusivity=unchecked --static-swift-stdlib"
