#pragma once
// The DNS wire format as sbxd's forwarder needs it, as pure functions over packet bytes (RFC 1035): the question of a
// sandbox's query (to decide by name whether to forward it), an answer-less response (to refuse a query or report an
// error), the IPv4 addresses an upstream answer carries (for the sandbox's firewall set; the answer itself is relayed
// unchanged), and the allow-list patterns the names are matched against.
//
// Parsing is strict where it costs legitimate traffic nothing: compression pointers must point backwards to an
// earlier name (so loops cannot be built) and never into the header; labels are letters, digits, '-' and '_' in a
// question (so that no label can hold a '.' and make "api.github" + "com" read as an allowed "api.github.com").
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace sbx::daemon::dns {

inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kMaxNameWireLength = 255;  // labels, their length bytes and the root byte
inline constexpr size_t kMaxLabelLength = 63;

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeCname = 5;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kClassIn = 1;

inline constexpr uint8_t kRcodeNoError = 0;
inline constexpr uint8_t kRcodeFormErr = 1;
inline constexpr uint8_t kRcodeServFail = 2;
inline constexpr uint8_t kRcodeNxDomain = 3;
inline constexpr uint8_t kRcodeNotImp = 4;
inline constexpr uint8_t kRcodeRefused = 5;

// The one question of a query (or the question a response echoes).
struct Question {
  uint16_t id = 0;
  std::string name;  // lower case, no trailing dot ("api.github.com"); "" for the root
  uint16_t qtype = 0;
  uint16_t qclass = 0;

  bool operator==(const Question&) const = default;
};

// A query: QR clear, opcode QUERY, exactly one question, no answer or authority records (an EDNS OPT record in the
// additional section is fine and left alone). Errors say what is wrong and at which offset.
Result<Question> parse_query(std::string_view packet);

// The response to `query` (its raw bytes) with `rcode` (0 to 15) and no records: its id, its RD and CD flags and its
// question section (byte for byte, so the question's case is kept), QR and RA set. An error if `query` is not one
// parse_query accepts.
Result<std::string> make_empty_response(std::string_view query, uint8_t rcode);

struct AddressRecord {
  uint32_t address = 0;  // host byte order
  uint32_t ttl = 0;      // seconds; a TTL with the top bit set counts as 0 (RFC 2181)

  bool operator==(const AddressRecord&) const = default;
};

struct Answer {
  Question question;      // the question the response echoes, with the response's id
  uint8_t rcode = 0;
  bool truncated = false;  // TC: the answer did not fit and the client will retry over TCP
  // Every A record of class IN in the answer section, in order, whatever its owner name (so those at the end of a
  // CNAME chain too). Records of other types, and those of the authority and additional sections, are skipped.
  std::vector<AddressRecord> addresses;
};

// A response: QR set, opcode QUERY, exactly one question. Every record of every section is walked, so a packet cut
// short anywhere is an error.
Result<Answer> parse_response(std::string_view packet);

// Whether `name` matches an allow-list `pattern`, ignoring case and one trailing dot on either: "api.github.com"
// matches only itself; "*.example.com" matches any name strictly below example.com (a.example.com, a.b.example.com)
// but not example.com itself. An empty pattern matches nothing.
bool name_allowed(std::string_view name, std::string_view pattern);

// Checks an allow-list entry as a user gave it: a host name of LDH labels (letters, digits, '-' inside a label, 1 to
// 63 bytes each, 253 in all), optionally "*." followed by one, and not an IPv4 address. Returns it lower case
// without a trailing dot, or an error that says what is wrong with it.
Result<std::string> normalize_host_pattern(std::string_view pattern);

}  // namespace sbx::daemon::dns
