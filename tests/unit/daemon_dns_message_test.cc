// The DNS forwarder's codec: queries, answer-less responses, the addresses in an answer, allow-list patterns.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>

#include "daemon/dns_message.h"

using namespace sbx;
using namespace sbx::daemon::dns;

namespace {

constexpr uint16_t kQr = 0x8000;
constexpr uint16_t kTc = 0x0200;
constexpr uint16_t kRd = 0x0100;
constexpr uint16_t kRa = 0x0080;
constexpr uint16_t kCd = 0x0010;
constexpr uint16_t kTypeOpt = 41;

// Builds a packet field by field, big-endian.
class Packet {
 public:
  Packet& u8(uint8_t v) {
    bytes_.push_back(static_cast<char>(v));
    return *this;
  }
  Packet& u16(uint16_t v) { return u8(static_cast<uint8_t>(v >> 8)).u8(static_cast<uint8_t>(v & 0xff)); }
  Packet& u32(uint32_t v) { return u16(static_cast<uint16_t>(v >> 16)).u16(static_cast<uint16_t>(v & 0xffff)); }
  Packet& raw(std::string_view bytes) {
    bytes_.append(bytes);
    return *this;
  }
  Packet& header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an = 0, uint16_t ns = 0, uint16_t ar = 0) {
    return u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
  }
  // The labels of a dotted name without the root byte, for a name that ends in a pointer.
  Packet& labels(std::string_view dotted) {
    while (!dotted.empty()) {
      size_t dot = std::min(dotted.find('.'), dotted.size());
      u8(static_cast<uint8_t>(dot)).raw(dotted.substr(0, dot));
      dotted.remove_prefix(std::min(dot + 1, dotted.size()));
    }
    return *this;
  }
  Packet& name(std::string_view dotted) { return labels(dotted).u8(0); }
  Packet& pointer(size_t offset) { return u16(static_cast<uint16_t>(0xc000 | offset)); }
  Packet& question(std::string_view qname, uint16_t type = kTypeA) { return name(qname).u16(type).u16(kClassIn); }
  // A record's fields after its owner name; its data follows.
  Packet& record(uint16_t type, uint32_t ttl, uint16_t rdlength, uint16_t klass = kClassIn) {
    return u16(type).u16(klass).u32(ttl).u16(rdlength);
  }
  Packet& ipv4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) { return u8(a).u8(b).u8(c).u8(d); }

  size_t size() const { return bytes_.size(); }
  const std::string& str() const { return bytes_; }

 private:
  std::string bytes_;
};

std::string query(std::string_view qname, uint16_t flags = kRd, uint16_t type = kTypeA) {
  return Packet().header(0x1234, flags, 1).question(qname, type).str();
}

// www.example.com: a CNAME to edge.example.com, an AAAA and two A records for it (every name after the question
// compressed, edge.example.com through two pointers), and a glue A record in the additional section.
std::string cname_response() {
  Packet p;
  p.header(0xbeef, kQr | kRd | kRa, 1, 4, 0, 1);
  const size_t qname = p.size();
  p.question("www.Example.com");
  p.pointer(qname).record(kTypeCname, 60, 7);
  const size_t target = p.size();
  p.labels("edge").pointer(qname + 4);
  p.pointer(target).record(kTypeAaaa, 60, 16).raw(std::string(16, '\x01'));
  p.pointer(target).record(kTypeA, 300, 4).ipv4(93, 184, 216, 34);
  p.pointer(target).record(kTypeA, 0x80000000, 4).ipv4(93, 184, 216, 35);
  p.name("ns").record(kTypeA, 60, 4).ipv4(10, 0, 0, 1);
  return p.str();
}

void check_error(const Result<Question>& r, std::string_view fragment) {
  REQUIRE_FALSE(r.ok());
  CHECK_MESSAGE(r.error().message().find(fragment) != std::string::npos, r.error().message());
}

}  // namespace

TEST_SUITE("daemon.dns") {

TEST_CASE("a query's question is read with its id, type and class") {
  auto q = parse_query(query("api.github.com", kRd, kTypeAaaa));
  REQUIRE_MESSAGE(q.ok(), q.error().message());
  CHECK(q->id == 0x1234);
  CHECK(q->name == "api.github.com");
  CHECK(q->qtype == kTypeAaaa);
  CHECK(q->qclass == kClassIn);
}

TEST_CASE("a query's name comes out lower case, and the root as an empty name") {
  auto q = parse_query(query("API.GitHub.COM"));
  REQUIRE(q.ok());
  CHECK(q->name == "api.github.com");
  q = parse_query(query("_dmarc.Mail-1.example.com"));
  REQUIRE(q.ok());
  CHECK(q->name == "_dmarc.mail-1.example.com");
  q = parse_query(query(""));
  REQUIRE(q.ok());
  CHECK(q->name.empty());
}

TEST_CASE("a query with an EDNS OPT record is accepted") {
  auto packet = Packet().header(7, kRd, 1, 0, 0, 1).question("example.com").name("").record(kTypeOpt, 0, 0, 1232);
  auto q = parse_query(packet.str());
  REQUIRE_MESSAGE(q.ok(), q.error().message());
  CHECK(q->name == "example.com");
}

TEST_CASE("a packet that is not a one-question standard query is rejected") {
  check_error(parse_query(query("a.com", kQr)), "not a query");
  check_error(parse_query(query("a.com", 2 << 11)), "opcode 2");
  check_error(parse_query(Packet().header(1, 0, 0).str()), "0 questions");
  check_error(parse_query(Packet().header(1, 0, 2).question("a.com").question("b.com").str()), "2 questions");
  check_error(parse_query(Packet().header(1, 0, 1, 1).question("a.com").str()), "1 answer");
}

TEST_CASE("a label holding a dot or another odd byte, or longer than 63 bytes, is rejected") {
  check_error(parse_query(Packet().header(1, 0, 1).u8(10).raw("api.github").name("com").u16(1).u16(1).str()),
              "byte 0x2e");
  check_error(parse_query(query("a b.com")), "byte 0x20");
  check_error(parse_query(Packet().header(1, 0, 1).u8(3).raw(std::string("a\0b", 3)).u8(0).u16(1).u16(1).str()),
              "byte 0x00");
  check_error(parse_query(Packet().header(1, 0, 1).u8(64).raw(std::string(64, 'a')).u8(0).u16(1).u16(1).str()),
              "label length byte 0x40");
  check_error(parse_query(Packet().header(1, 0, 1).u8(0x80).u8(0).u16(1).u16(1).str()), "label length byte 0x80");
}

TEST_CASE("a name of 255 bytes on the wire is accepted, one of 256 is not") {
  const std::string l63(63, 'a');
  const std::string longest = l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b');
  auto q = parse_query(query(longest));
  REQUIRE_MESSAGE(q.ok(), q.error().message());
  CHECK(q->name == longest);
  check_error(parse_query(query(longest + "b")), "longer than 255 bytes");
  check_error(parse_query(query(longest + "." + l63)), "longer than 255 bytes");
}

TEST_CASE("a query cut short anywhere is rejected as truncated") {
  const std::string full = query("api.github.com");
  REQUIRE(parse_query(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    auto q = parse_query(full.substr(0, n));
    REQUIRE_FALSE(q.ok());
    CHECK_MESSAGE(q.error().message().find("truncated") != std::string::npos, n, ": ", q.error().message());
  }
}

TEST_CASE("compression pointers that loop, point forward or into the header are rejected") {
  // The question's name is a pointer to itself.
  check_error(parse_query(Packet().header(1, 0, 1).pointer(12).u16(1).u16(1).str()), "compression pointer");
  // Into the header.
  check_error(parse_query(Packet().header(1, 0, 1).labels("a").pointer(2).u16(1).u16(1).str()), "points to 2");
  // "a" then a pointer to offset 20, which points back to the question: a loop.
  Packet loop;
  loop.header(1, kQr, 1, 1).labels("a").pointer(20).u16(1).u16(1);
  REQUIRE(loop.size() == 20);
  loop.pointer(12).record(kTypeA, 1, 4).ipv4(1, 2, 3, 4);
  auto a = parse_response(loop.str());
  REQUIRE_FALSE(a.ok());
  CHECK_MESSAGE(a.error().message().find("compression pointer at offset 14 points to 20") != std::string::npos,
                a.error().message());
  // An answer's owner name pointing to itself.
  Packet self;
  self.header(1, kQr, 1, 1).question("a.com");
  self.pointer(self.size()).record(kTypeA, 1, 4).ipv4(1, 2, 3, 4);
  a = parse_response(self.str());
  REQUIRE_FALSE(a.ok());
  CHECK_MESSAGE(a.error().message().find("answer 1: record at offset 23: the compression pointer") !=
                    std::string::npos,
                a.error().message());
}

TEST_CASE("a response's A records are collected through a CNAME and compression, other records skipped") {
  auto a = parse_response(cname_response());
  REQUIRE_MESSAGE(a.ok(), a.error().message());
  CHECK(a->question == Question{0xbeef, "www.example.com", kTypeA, kClassIn});
  CHECK(a->rcode == kRcodeNoError);
  CHECK_FALSE(a->truncated);
  REQUIRE(a->addresses.size() == 2);
  CHECK(a->addresses[0] == AddressRecord{0x5db8d822, 300});
  CHECK(a->addresses[1] == AddressRecord{0x5db8d823, 0});  // a TTL with the top bit set counts as 0
}

TEST_CASE("a response cut short anywhere is rejected as truncated") {
  const std::string full = cname_response();
  for (size_t n = 0; n < full.size(); ++n) {
    auto a = parse_response(full.substr(0, n));
    REQUIRE_FALSE(a.ok());
    CHECK_MESSAGE(a.error().message().find("truncated") != std::string::npos, n, ": ", a.error().message());
  }
}

TEST_CASE("a response with a malformed A record, or that is not a response, is rejected; TC is reported") {
  Packet bad;
  bad.header(1, kQr, 1, 1).question("a.com").pointer(12).record(kTypeA, 1, 6).ipv4(1, 2, 3, 4).u16(0);
  auto a = parse_response(bad.str());
  REQUIRE_FALSE(a.ok());
  CHECK_MESSAGE(a.error().message().find("6 bytes of data, not 4") != std::string::npos, a.error().message());
  a = parse_response(query("a.com"));
  REQUIRE_FALSE(a.ok());
  CHECK(a.error().message().find("not a response") != std::string::npos);
  a = parse_response(Packet().header(1, kQr | kTc | kRcodeServFail, 1).question("a.com").str());
  REQUIRE(a.ok());
  CHECK(a->truncated);
  CHECK(a->rcode == kRcodeServFail);
}

TEST_CASE("an empty response echoes id, RD, CD and the question byte for byte, and drops EDNS") {
  auto r = make_empty_response(query("Api.GitHub.com", kRd, kTypeAaaa), kRcodeRefused);
  REQUIRE_MESSAGE(r.ok(), r.error().message());
  CHECK(*r == Packet().header(0x1234, kQr | kRd | kRa | kRcodeRefused, 1).question("Api.GitHub.com", kTypeAaaa).str());
  r = make_empty_response(query("a.com", kCd), kRcodeNxDomain);
  REQUIRE(r.ok());
  CHECK(*r == Packet().header(0x1234, kQr | kCd | kRa | kRcodeNxDomain, 1).question("a.com").str());
  auto edns = Packet().header(9, kRd, 1, 0, 0, 1).question("a.com").name("").record(kTypeOpt, 0, 0, 1232);
  r = make_empty_response(edns.str(), kRcodeServFail);
  REQUIRE(r.ok());
  CHECK(*r == Packet().header(9, kQr | kRd | kRa | kRcodeServFail, 1).question("a.com").str());
}

TEST_CASE("an empty response needs a valid query and an rcode that fits") {
  CHECK_FALSE(make_empty_response(query("a.com"), 16).ok());
  CHECK_FALSE(make_empty_response(cname_response(), kRcodeRefused).ok());
  CHECK_FALSE(make_empty_response("", kRcodeServFail).ok());
  CHECK_FALSE(make_empty_response(query("a.com").substr(0, 20), kRcodeServFail).ok());
}

TEST_CASE("a refused response parses back to the query's question with no addresses") {
  const std::string q = query("Blocked.Example.org");
  for (uint8_t rcode : {kRcodeRefused, kRcodeNxDomain, kRcodeNoError}) {
    auto r = make_empty_response(q, rcode);
    REQUIRE(r.ok());
    auto a = parse_response(*r);
    REQUIRE_MESSAGE(a.ok(), a.error().message());
    CHECK(a->question == *parse_query(q));
    CHECK(a->question.name == "blocked.example.org");
    CHECK(a->rcode == rcode);
    CHECK(a->addresses.empty());
  }
}

TEST_CASE("an exact pattern matches only that name, ignoring case and a trailing dot") {
  CHECK(name_allowed("api.github.com", "api.github.com"));
  CHECK(name_allowed("API.GitHub.com.", "api.github.com"));
  CHECK(name_allowed("api.github.com", "API.GITHUB.COM."));
  CHECK_FALSE(name_allowed("xapi.github.com", "api.github.com"));
  CHECK_FALSE(name_allowed("a.api.github.com", "api.github.com"));
  CHECK_FALSE(name_allowed("github.com", "api.github.com"));
  CHECK_FALSE(name_allowed("api.github.com.evil.net", "api.github.com"));
  CHECK_FALSE(name_allowed("", ""));
  CHECK_FALSE(name_allowed("", "."));
}

TEST_CASE("a wildcard pattern matches names strictly below its domain") {
  CHECK(name_allowed("a.example.com", "*.example.com"));
  CHECK(name_allowed("a.b.example.com", "*.example.com"));
  CHECK(name_allowed("A.EXAMPLE.COM.", "*.Example.com."));
  CHECK_FALSE(name_allowed("example.com", "*.example.com"));
  CHECK_FALSE(name_allowed("example.com.", "*.example.com"));
  CHECK_FALSE(name_allowed("badexample.com", "*.example.com"));
  CHECK_FALSE(name_allowed("a.example.com.evil.net", "*.example.com"));
  CHECK_FALSE(name_allowed("a.example.co", "*.example.com"));
}

TEST_CASE("a host pattern is normalized to lower case without a trailing dot") {
  CHECK(*normalize_host_pattern("API.GitHub.com.") == "api.github.com");
  CHECK(*normalize_host_pattern("*.Example.COM") == "*.example.com");
  CHECK(*normalize_host_pattern("localhost") == "localhost");
  CHECK(*normalize_host_pattern("xn--bcher-kva.example") == "xn--bcher-kva.example");
  CHECK(*normalize_host_pattern("123.example.com") == "123.example.com");
  const std::string l63(63, 'a');
  const std::string longest = l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b');
  CHECK(*normalize_host_pattern(longest) == longest);
}

TEST_CASE("a bad host pattern is an error that names it and says what is wrong") {
  const std::string l63(63, 'a');
  const std::pair<std::string, std::string> cases[] = {
      {"", "names no host"},
      {".", "names no host"},
      {"*.", "names no host"},
      {"*", "'*' is only allowed as the whole first label"},
      {"a.*.com", "'*' is only allowed as the whole first label"},
      {"*.*.com", "'*' is only allowed as the whole first label"},
      {"**.com", "label '**' has a character other than"},
      {"a_b.com", "label 'a_b' has a character other than"},
      {" a.com", "has a character other than"},
      {"https://a.com", "has a character other than"},
      {"a..com", "empty label"},
      {".a.com", "empty label"},
      {"a.com..", "empty label"},
      {"-a.com", "starts or ends with '-'"},
      {"a-.com", "starts or ends with '-'"},
      {l63 + "a.com", "is longer than 63 bytes"},
      {l63 + "." + l63 + "." + l63 + "." + std::string(62, 'b'), "longer than 253 characters"},
      {"10.0.0.1", "IP address"},
      {"*.10", "IP address"},
  };
  for (const auto& [pattern, fragment] : cases) {
    auto r = normalize_host_pattern(pattern);
    REQUIRE_FALSE_MESSAGE(r.ok(), pattern);
    const std::string& message = r.error().message();
    CHECK_MESSAGE(message.find("host pattern '" + pattern + "': ") == 0, message);
    CHECK_MESSAGE(message.find(fragment) != std::string::npos, message);
  }
}

}  // TEST_SUITE
