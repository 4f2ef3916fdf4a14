#!/bin/sh
# Developer's tool, not part of logoutd: measure logoutd beside the two logind anchors of
# ../shared/anchors (elogind 246 in a chroot, systemd-logind 252 with systemd as PID 1 of a
# container) in one sitting, on the same machine. It only runs three commands, one after
# the other; bench/ neither imports nor calls the anchors.
#
# Needs root and the anchors' rootfs, made once with
#   ../shared/anchors/bench-anchor.py --anchor elogind setup
#   ../shared/anchors/bench-anchor.py --anchor systemd setup
# Each anchor bench brings its anchor up and down again (about 2.5 min each); logoutd's bench
# takes about 3 min. Arguments go to bench/run.py, e.g.
#   tools/compare-anchors.sh --out /tmp/logoutd-bench.md    # leave docs/performance.md as it is
# Without --out (or --no-doc), bench/run.py rewrites the generated part of docs/performance.md.
# This runs the three benches one after the other, each by its own method; tools/race.py measures
# all three by one method in one sitting (docs/performance.md, "The race").
set -eu
cd "$(dirname "$0")/.."
../shared/anchors/bench-anchor.py --anchor elogind bench
../shared/anchors/bench-anchor.py --anchor systemd bench
.venv/bin/python bench/run.py "$@"
