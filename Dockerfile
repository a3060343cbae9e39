# Image that builds tapstack and runs its integration tests against the container's
# own network namespace as the kernel peer. Run it with
#   docker run --rm --cap-add NET_ADMIN --device /dev/net/tun IMAGE
# scripts/docker-test builds and runs it with a locally made base image.
ARG BASE_IMAGE=node:20-bookworm
FROM ${BASE_IMAGE}

# Proxies and registries of the machine that builds (scripts/docker-test passes them;
# http_proxy, https_proxy and no_proxy are Docker's predefined build args).
ARG APT_PROXY=
ARG NPM_REGISTRY=
ARG NPM_PROXY=
ARG NPM_HTTPS_PROXY=

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /opt/tapstack

# System packages in their own layer, reused while only the sources change.
COPY scripts/setup-system scripts/setup-system
RUN if [ -n "$APT_PROXY" ]; then \
      echo "Acquire::http::Proxy \"$APT_PROXY\";" >/etc/apt/apt.conf.d/90build-proxy; \
    fi \
 && TAPSTACK_SETUP_NO_TUN_CHECK=1 bash scripts/setup-system \
 && if ! command -v tini >/dev/null; then \
      apt-get -qq update && apt-get -qq install -y --no-install-recommends tini >/dev/null; \
    fi \
 && rm -rf /var/lib/apt/lists/* /etc/apt/apt.conf.d/90build-proxy

COPY . .
# node-gyp compiles the addon against the headers installed next to node when there
# are some, instead of downloading them (the local base image has them).
RUN if [ -z "${npm_config_nodedir:-}" ]; then \
      prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"; \
      if [ -f "$prefix/include/node/node_api.h" ]; then export npm_config_nodedir="$prefix"; fi; \
    fi \
 && if [ -n "$NPM_REGISTRY" ]; then export npm_config_registry="$NPM_REGISTRY"; fi \
 && if [ -n "$NPM_PROXY" ]; then export npm_config_proxy="$NPM_PROXY"; fi \
 && if [ -n "$NPM_HTTPS_PROXY" ]; then export npm_config_https_proxy="$NPM_HTTPS_PROXY"; fi \
 && export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false \
 && if [ -f package-lock.json ]; then npm ci; else npm install; fi \
 && npm cache clean --force >/dev/null 2>&1

# Without network namespaces (a container with only NET_ADMIN may not make them) the
# harness uses this container's own namespace as the kernel side.
ENV TAPSTACK_TEST_PEER=local CI=true
# tini as PID 1 passes on SIGTERM (docker stop, Ctrl-C) and reaps the kernel-side tools
# the tests leave behind.
ENTRYPOINT ["tini", "--"]
# Files named *.netns.test.ts need network namespaces of their own (a second kernel as
# the oracle) that a container with only NET_ADMIN can't make; they run in `npm test`.
CMD ["npx", "vitest", "run", "test/integration", "--exclude", "**/*.netns.test.ts"]
