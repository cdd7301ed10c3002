#include "daemon/dns_forwarder.h"

#include <arpa/inet.h>
#include <sys/random.h>

#include <cstring>
#include <sstream>

#include "base/ipv4.h"
#include "daemon/dns_message.h"
#include "daemon/log.h"
#include "daemon/uv_handle.h"

namespace sbx::daemon {

namespace {

constexpr uint64_t kAttemptTimeoutMs = 2000;  // then the next upstream, and after the last, SERVFAIL
constexpr size_t kMaxPending = 4096;
constexpr size_t kMaxPacket = 4096;

sockaddr_in make_address(uint32_t address, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(address);
  sa.sin_port = htons(port);
  return sa;
}

struct SendRequest {
  uv_udp_send_t req;
  std::string data;
};

void send_packet(uv_udp_t* socket, const sockaddr_in& to, std::string data) {
  auto* s = new SendRequest{{}, std::move(data)};
  uv_buf_t buf = uv_buf_init(s->data.data(), static_cast<unsigned>(s->data.size()));
  int err = uv_udp_send(&s->req, socket, &buf, 1, reinterpret_cast<const sockaddr*>(&to),
                        [](uv_udp_send_t* req, int) { delete reinterpret_cast<SendRequest*>(req); });
  if (err != 0) {
    delete s;
  }
}

void set_id(std::string& packet, uint16_t id) {
  packet[0] = static_cast<char>(id >> 8);
  packet[1] = static_cast<char>(id & 0xff);
}

void alloc_buffer(uv_handle_t*, size_t, uv_buf_t* buf) {
  static char storage[kMaxPacket];  // one loop thread; each datagram is handled before the next is read
  *buf = uv_buf_init(storage, sizeof storage);
}

}  // namespace

struct DnsForwarder::Impl {
  struct Pending {
    sockaddr_in client;
    uint16_t client_id;
    std::string query;  // with our id
    DnsClient sandbox;
    size_t upstream = 0;
    uint64_t sent_ms = 0;
  };

  uv_loop_t* loop;
  std::vector<uint32_t> upstreams;
  Lookup lookup;
  Learn learn;
  UvHandle<uv_udp_t> listen = UvHandle<uv_udp_t>::make();
  UvHandle<uv_udp_t> upstream = UvHandle<uv_udp_t>::make();
  UvHandle<uv_timer_t> timer = UvHandle<uv_timer_t>::make();
  std::map<uint16_t, Pending> pending;

  Result<void> open(uint32_t address, uint16_t port) {
    uv_udp_init(loop, listen.get());
    uv_udp_init(loop, upstream.get());
    uv_timer_init(loop, timer.get());
    listen.get()->data = this;
    upstream.get()->data = this;
    timer.get()->data = this;
    sockaddr_in at = make_address(address, port);
    if (int err = uv_udp_bind(listen.get(), reinterpret_cast<const sockaddr*>(&at), 0); err != 0) {
      return Error(fmt::format("bind the DNS forwarder to {}:{}: {}", format_ipv4(address), port, uv_strerror(err)),
                   -err);
    }
    sockaddr_in any = make_address(0, 0);
    if (int err = uv_udp_bind(upstream.get(), reinterpret_cast<const sockaddr*>(&any), 0); err != 0) {
      return Error(fmt::format("bind the DNS forwarder's upstream socket: {}", uv_strerror(err)), -err);
    }
    uv_udp_recv_start(listen.get(), alloc_buffer, [](uv_udp_t* h, ssize_t n, const uv_buf_t* buf,
                                                     const sockaddr* from, unsigned) {
      if (h->data != nullptr && n > 0 && from != nullptr && from->sa_family == AF_INET) {
        static_cast<Impl*>(h->data)->on_query(std::string_view(buf->base, static_cast<size_t>(n)),
                                              *reinterpret_cast<const sockaddr_in*>(from));
      }
    });
    uv_udp_recv_start(upstream.get(), alloc_buffer, [](uv_udp_t* h, ssize_t n, const uv_buf_t* buf,
                                                       const sockaddr* from, unsigned) {
      if (h->data != nullptr && n > 0 && from != nullptr && from->sa_family == AF_INET) {
        static_cast<Impl*>(h->data)->on_answer(std::string_view(buf->base, static_cast<size_t>(n)),
                                               *reinterpret_cast<const sockaddr_in*>(from));
      }
    });
    uv_timer_start(timer.get(), [](uv_timer_t* t) {
      if (t->data != nullptr) {
        static_cast<Impl*>(t->data)->expire();
      }
    }, kAttemptTimeoutMs / 2, kAttemptTimeoutMs / 2);
    return ok();
  }

  // An error answer to a pending query, under the id the client chose.
  void fail(const Pending& p, uint8_t rcode) {
    std::string query = p.query;
    set_id(query, p.client_id);
    reply(p.client, query, rcode);
  }

  void reply(const sockaddr_in& to, std::string_view query, uint8_t rcode) {
    if (auto r = dns::make_empty_response(query, rcode); r.ok()) {
      send_packet(listen.get(), to, std::move(*r));
    }
  }

  std::optional<uint16_t> free_id() {
    for (int attempt = 0; attempt < 16; ++attempt) {
      uint16_t id = 0;
      if (::getrandom(&id, sizeof id, GRND_NONBLOCK) == sizeof id && !pending.count(id)) {
        return id;
      }
    }
    return std::nullopt;
  }

  void on_query(std::string_view packet, const sockaddr_in& from) {
    auto question = dns::parse_query(packet);
    if (!question.ok()) {
      return;  // not a query we can answer, not even with an error
    }
    auto client = lookup(ntohl(from.sin_addr.s_addr));
    if (!client) {
      return reply(from, packet, dns::kRcodeRefused);
    }
    if (!client->allow_hosts.empty() && !allowed(*client, question->name)) {
      return reply(from, packet, dns::kRcodeNxDomain);
    }
    auto id = pending.size() < kMaxPending ? free_id() : std::nullopt;
    if (!id || upstreams.empty()) {
      return reply(from, packet, dns::kRcodeServFail);
    }
    Pending p{from, question->id, std::string(packet), std::move(*client)};
    set_id(p.query, *id);
    auto& entry = pending[*id] = std::move(p);
    send_upstream(entry);
  }

  static bool allowed(const DnsClient& c, const std::string& name) {
    for (const auto& pattern : c.allow_hosts) {
      if (dns::name_allowed(name, pattern)) {
        return true;
      }
    }
    return false;
  }

  void send_upstream(Pending& p) {
    p.sent_ms = uv_now(loop);
    send_packet(upstream.get(), make_address(upstreams[p.upstream], 53), p.query);
  }

  void on_answer(std::string_view packet, const sockaddr_in& from) {
    if (packet.size() < dns::kHeaderSize) {
      return;
    }
    uint16_t id = static_cast<uint16_t>((uint8_t(packet[0]) << 8) | uint8_t(packet[1]));
    auto it = pending.find(id);
    if (it == pending.end() || ntohl(from.sin_addr.s_addr) != upstreams[it->second.upstream] ||
        ntohs(from.sin_port) != 53) {
      return;  // late, or not from the server asked
    }
    Pending p = std::move(it->second);
    pending.erase(it);
    if (!p.sandbox.allow_hosts.empty()) {
      auto answer = dns::parse_response(packet);
      if (!answer.ok()) {
        return fail(p, dns::kRcodeServFail);
      }
      std::vector<uint32_t> addresses;
      uint32_t ttl = UINT32_MAX;
      for (const auto& a : answer->addresses) {
        addresses.push_back(a.address);
        ttl = std::min(ttl, a.ttl);
      }
      if (!addresses.empty()) {
        learn(p.sandbox.key, addresses, ttl);
      }
    }
    std::string out(packet);
    set_id(out, p.client_id);
    send_packet(listen.get(), p.client, std::move(out));
  }

  void expire() {
    uint64_t now = uv_now(loop);
    for (auto it = pending.begin(); it != pending.end();) {
      Pending& p = it->second;
      if (now - p.sent_ms < kAttemptTimeoutMs) {
        ++it;
      } else if (p.upstream + 1 < upstreams.size()) {
        ++p.upstream;
        send_upstream(p);
        ++it;
      } else {
        fail(p, dns::kRcodeServFail);
        it = pending.erase(it);
      }
    }
  }
};

DnsForwarder::DnsForwarder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DnsForwarder::~DnsForwarder() = default;

Result<std::unique_ptr<DnsForwarder>> DnsForwarder::start(uv_loop_t* loop, uint32_t address, uint16_t port,
                                                          std::vector<uint32_t> upstreams, Lookup lookup,
                                                          Learn learn) {
  auto impl = std::make_unique<Impl>();
  impl->loop = loop;
  impl->upstreams = std::move(upstreams);
  impl->lookup = std::move(lookup);
  impl->learn = std::move(learn);
  SBX_TRY(impl->open(address, port));
  return std::unique_ptr<DnsForwarder>(new DnsForwarder(std::move(impl)));
}

std::vector<uint32_t> resolv_conf_nameservers(std::string_view text) {
  std::vector<uint32_t> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string keyword;
    std::string value;
    if (words >> keyword >> value && keyword == "nameserver") {
      if (auto a = parse_ipv4(value); a.ok()) {
        out.push_back(*a);
      }
    }
  }
  return out;
}

}  // namespace sbx::daemon
