#!/bin/sh
# The image's entrypoint: `payments-sandbox ARGS` (CMD: serve), with the scenario files mounted at
# /scenarios loaded ahead of the built-in pack.
#
# Why a script: --scenarios takes a folder but refuses one with no *.yaml in it (a typo'd path
# should not pass silently), while an image must also start with nothing mounted. So the folder is
# named only when it holds a scenario file, and only when PAYMENTS_SANDBOX_SCENARIOS is not set
# already (set it, even to "", to choose other files or none).
set -eu
if [ -z "${PAYMENTS_SANDBOX_SCENARIOS+set}" ]; then
  for file in /scenarios/*.yaml /scenarios/*.yml; do
    if [ -f "$file" ]; then
      export PAYMENTS_SANDBOX_SCENARIOS=/scenarios
      break
    fi
  done
fi
# exec: the server becomes PID 1 and receives `docker stop`'s SIGTERM itself.
exec payments-sandbox "$@"
