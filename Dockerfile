# SPDX-License-Identifier: Apache-2.0
# One image with the three meshlet programs: meshlet-ca and meshlet-webhook (run by
# manifests/base) and meshlet-proxy (injected into pods by the webhook, as both the
# meshlet-init container and the sidecar). The webhook injects this image by default:
# keep its tag and proxy.image in manifests/base/config/webhook.yaml in step.
#
#   docker build -t meshlet/meshlet:$(cat VERSION) .

# --- build: Debian 12 with the -dev packages, `make` as on a workstation -------------
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc make pkgconf libc6-dev \
        libmicrohttpd-dev libssl-dev libjansson-dev libyaml-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" BUILD=/tmp/build \
 && make install BUILD=/tmp/build PREFIX=/usr/local DESTDIR=/out \
 && strip --strip-unneeded /out/usr/local/bin/meshlet-* \
 && /out/usr/local/bin/meshlet-ca --version

# --- runtime: debian:12-slim with the runtime libraries only --------------------------
FROM debian:12-slim
ARG VERSION=dev
LABEL org.opencontainers.image.title="meshlet" \
      org.opencontainers.image.description="meshlet-ca, meshlet-webhook and meshlet-proxy" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# iptables (iptables-restore and -save, nft backend) is for `meshlet-proxy init`,
# which the injected meshlet-init container runs as root with NET_ADMIN.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libmicrohttpd12 libssl3 libjansson4 libyaml-0-2 iptables \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 1337 meshlet-proxy \
 && useradd --system --uid 1337 --gid 1337 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin meshlet-proxy
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
# The sidecar runs as 1337: meshlet-proxy init exempts that UID's traffic from capture.
# meshlet-ca and meshlet-webhook set their own non-root user in manifests/base.
USER 1337:1337
CMD ["meshlet-proxy", "--help"]
