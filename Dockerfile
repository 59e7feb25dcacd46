# One image for both roles: `hallpass operator` and `hallpass server`.
#
# Build: docker build --build-arg VERSION=v0.1.0 -t hallpass/hallpass:v0.1.0 .
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/hallpass/hallpass/internal/version.Version=${VERSION}" \
      -o /out/hallpass ./cmd/hallpass \
 && mkdir -p /out/tmp /out/var/lib/hallpass \
 && echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > /out/passwd \
 && echo 'nonroot:x:65532:' > /out/group

# A distroless image built from scratch: the static binary, CA certificates for upstream
# identity providers, and a non-root user. No shell, no package manager.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/passwd /etc/passwd
COPY --from=build /out/group /etc/group
COPY --from=build --chown=65532:65532 /out/tmp /tmp
COPY --from=build --chown=65532:65532 /out/var/lib/hallpass /var/lib/hallpass
COPY --from=build /out/hallpass /hallpass
USER 65532:65532
ENTRYPOINT ["/hallpass"]
