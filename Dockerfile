# fnhost in a container: a static binary, a non-root user, the quickstart manifest.
#   docker build -t fnhost .
#   docker run --rm -p 8080:8080 -e FNHOST_API_KEY=change-me fnhost
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/fnhost/fnhost.Version=${VERSION}" -o /out/fnhost ./cmd/fnhost

# Alpine rather than distroless: exec handlers written in shell need /bin/sh.
FROM alpine:3.22
RUN addgroup -S fnhost && adduser -S -G fnhost -h /app fnhost
WORKDIR /app
COPY --from=build /out/fnhost /usr/local/bin/fnhost
COPY --chown=fnhost:fnhost functions.yaml ./
COPY --chown=fnhost:fnhost examples/quickstart ./examples/quickstart
USER fnhost
# The listener must leave loopback inside a container, so an API key is required.
ENV FNHOST_LISTEN=0.0.0.0:8080
EXPOSE 8080
VOLUME /app/.fnhost
ENTRYPOINT ["fnhost"]
CMD ["run"]
