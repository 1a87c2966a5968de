// A TCP port on 127.0.0.1 that nobody listens on now: bound to 0, read back, closed. For tests and
// benchmarks that start a process on a port of their choice. (Not an httplib::Server: its socket has
// SO_REUSEPORT and would go on sharing connections with the process started on the port.)
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace summarizer::testing {

inline int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
}

}  // namespace summarizer::testing
