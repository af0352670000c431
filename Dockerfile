# wansteer agent image. Two stages: build the BPF object and the TypeScript on Debian 12 with
# the toolchain, then run on a slim Node 20 image with only what the agent needs at run time.
#   docker build -t REGISTRY/wansteer:0.1.0 .
# test/deploy/dockerfile.test.ts checks the stages; docs/deploy.md says what each package is for.

FROM node:20-bookworm AS build
# clang/llvm compile bpf/*.bpf.c for the BPF target; libbpf-dev has its headers. gcc and make come
# with this image (the Makefile asks gcc for the multiarch include directory).
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN make -C bpf \
 && make -C native/addon \
 && make -C envoy-filters/native \
 && npx tsc -p tsconfig.json \
 && npm prune --omit=dev

FROM node:20-bookworm-slim AS runtime
# libbpf1: the native binding loads libbpf.so.1 (koffi). iproute2: the agent asks `ip -j link`
# whether a WAN interface is Ethernet or raw IP.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/wansteer
ENV NODE_ENV=production
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /src/build/bpf ./build/bpf
COPY --from=build /src/build/native ./build/native
# The native session reporter for Envoy sidecars: the DaemonSet's init container puts it on the
# node, where edge workloads' istio-proxy containers mount it (docs/deploy.md).
COPY --from=build /src/build/envoy-module ./build/envoy-module
COPY --from=build /src/node_modules ./node_modules
# Read at run time: the gRPC intake's .proto, and the Lua filter for `wansteer render`.
COPY --from=build /src/proto ./proto
COPY --from=build /src/envoy-filters ./envoy-filters
# Runs as uid 0 with every capability dropped but BPF, NET_ADMIN and PERFMON (the DaemonSet's
# securityContext); see docs/deploy.md. The script itself is the entrypoint, so that node gets
# the V8 flags on its #! line (the memory and latency the benchmarks measured); `node
# bin/wansteer.js` would run without them.
ENTRYPOINT ["/opt/wansteer/bin/wansteer.js", "agent"]
CMD ["--config", "/etc/wansteer/config.yaml"]
