# Sourced by the scripts that build release binaries. Runtime exclusivity checks cost ~20k instructions per
# proxied request when left on in SwiftNIO and the other dependencies (PERFORMANCE.md; BENCHMARKS.md); our own
# data-path targets turn them off in Package.swift, and this turns them off for every module of a release build.
# The Swift runtime and Foundation are linked in statically, as the container images ship them: no dynamic
# loader work for a dozen Swift libraries at start (validate of the seed config 23 -> 15 ms here), direct calls
# instead of PLT stubs for every retain and release (~1.3k fewer instructions per proxied request), and fewer
# resident file pages (idle RSS 39.5 -> 37.2 MB).
# Linked by the toolchain's lld rather than gold, for two things gold cannot do: relative relocations packed
# as DT_RELR (glibc 2.36+, Debian 12; the binary still loads at a random address), which shrinks the table the
# loader reads at start from 3.8 MB to 31 KB, and no symbol table for the dynamic loader (1.9 MB of .dynsym
# and 0.6 MB of hash: nothing loads a plugin into these binaries); ~3 MB less idle RSS (BENCHMARKS.md).
# Every function is compiled into a section of its own and linked in the order of scripts/meshproxy.order: the
# functions a proxy runs, hottest first (scripts/generate-order-file.sh). The kernel maps a binary 64 KB around
# each page a process touches, and a start touching a few MB of functions spread over 35 MB of code kept ~16 MB of
# it resident; packed together, ~9 MB (idle RSS 26 -> 19 MB). The sourcing scripts run from the repository root
# (sh has no BASH_SOURCE).
order_file="$(cd "$(dirname "${BASH_SOURCE:-scripts/release-flags.sh}")" && pwd)/meshproxy.order"
RELEASE_FLAGS="-Xswiftc -enforce-exclusivity=unchecked --static-swift-stdlib -Xswiftc -use-ld=lld \
  -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic \
  -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections \
  -Xlinker --symbol-ordering-file=$order_file -Xlinker --no-warn-symbol-ordering"
