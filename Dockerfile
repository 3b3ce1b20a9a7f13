# The sandbox as a container image: `payments-sandbox serve` on 0.0.0.0:8000, as a non-root user,
# configured by the same PAYMENTS_SANDBOX_* variables as the CLI; scenario files mounted at
# /scenarios are loaded ahead of the built-in pack.
#
#   docker build -t payments-sandbox .
#   docker run --rm -p 8000:8000 -v "$PWD/scenarios:/scenarios:ro" payments-sandbox
#
# Two stages: the first builds the wheel from this checkout and installs it into a venv at a fixed
# path, the second copies only that venv, so the image runs the wheel `pip install payments-sandbox`
# installs, without pip, the build tools, the source or any test tool. Set
# the port with PAYMENTS_SANDBOX_PORT rather than --port: the health check reads it. Needs BuildKit
# (the default builder since Docker 23; DOCKER_BUILDKIT=1 before that) for the mounts below.
#
# BASE must be the same image in both stages (the venv links to the base's Python by its path). Any
# image with python3 (3.11 or newer) and its venv module will do, such as a Debian bookworm with
# python3 and python3-venv, which is what tests/container builds where no registry is reachable.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# An index mirror (PIP_INDEX_URL) is passed on when given; HTTP(S)_PROXY are build arguments Docker
# passes on by itself.
ARG PIP_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md openapi.json ./
COPY scenarios scenarios
COPY sandbox sandbox
# Behind a TLS-inspecting proxy pip needs that proxy's CA bundle: hand it over as a build secret
# (docker build --secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt), which is mounted for
# this one step and never stored in a layer; without it pip uses its own bundle. pip's cache is a
# cache mount, kept by the builder between builds and never in the image: where the index lets
# downloads be cached, a change to sandbox/ rebuilds this step without fetching every dependency.
# pip and setuptools are removed once the wheel is in (the runtime needs neither); the last two
# checks prove the server loads and no test tool came along with the dependencies.
RUN --mount=type=secret,id=pip_ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && python3 -m venv /opt/payments-sandbox \
 && /opt/payments-sandbox/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/payments-sandbox/bin/pip install /wheels/payments_sandbox-*.whl \
 && /opt/payments-sandbox/bin/pip uninstall --yes setuptools pip \
 && /opt/payments-sandbox/bin/python -c "import sandbox.cli, sandbox.app, sandbox.server" \
 && ! /opt/payments-sandbox/bin/python -c "import pytest" 2>/dev/null

FROM ${BASE}
COPY --from=build /opt/payments-sandbox /opt/payments-sandbox
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# A fixed uid, so that `runAsNonRoot` policies can check it; /data is its writable working folder
# (for --store sqlite:////data/sandbox.db on a volume); /scenarios is where scenario files mount.
RUN groupadd --gid 10001 sandbox \
 && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin sandbox \
 && mkdir -p /data /scenarios \
 && chown sandbox:sandbox /data
USER 10001:10001
WORKDIR /data
ENV PATH=/opt/payments-sandbox/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PAYMENTS_SANDBOX_HOST=0.0.0.0 \
    PAYMENTS_SANDBOX_PORT=8000
EXPOSE 8000
# Python, since the image has no curl; the health endpoint needs no token. 127.0.0.1 is one of
# the Host names the sandbox always answers.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/__sandbox/health' % os.environ.get('PAYMENTS_SANDBOX_PORT', '8000'), timeout=2)"]
# The entrypoint execs the CLI, so the server is PID 1 and gets the stop signal itself: on SIGTERM
# it answers what is in flight and exits 0 at once (well inside `docker stop`'s 10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["serve"]
