#include "daemon/dns_message.h"

#include <algorithm>
#include <iterator>

namespace sbx::daemon::dns {

namespace {

constexpr uint16_t kFlagQr = 0x8000;
constexpr uint16_t kFlagTc = 0x0200;
constexpr uint16_t kFlagRd = 0x0100;
constexpr uint16_t kFlagRa = 0x0080;
constexpr uint16_t kFlagCd = 0x0010;
constexpr uint8_t kPointerBits = 0xc0;
constexpr size_t kMaxNameTextLength = kMaxNameWireLength - 2;  // no length byte for the first label, no root byte

// Reads big-endian fields from a packet; callers check with need() before they read.
class Reader {
 public:
  explicit Reader(std::string_view packet) : packet_(packet) {}

  std::string_view packet() const { return packet_; }
  size_t pos() const { return pos_; }
  void seek(size_t pos) { pos_ = pos; }

  Result<void> need(size_t n, std::string_view what) const {
    if (packet_.size() - pos_ < n) {
      return make_error("truncated {} at offset {} ({} bytes needed, {} left)", what, pos_, n, packet_.size() - pos_);
    }
    return ok();
  }
  uint8_t u8() { return static_cast<uint8_t>(packet_[pos_++]); }
  uint16_t u16() {
    uint16_t hi = u8();
    return static_cast<uint16_t>(hi << 8 | u8());
  }
  uint32_t u32() {
    uint32_t hi = u16();
    return hi << 16 | u16();
  }

 private:
  std::string_view packet_;
  size_t pos_ = 0;
};

struct Header {
  uint16_t id = 0;
  uint16_t flags = 0;
  uint16_t qdcount = 0;
  uint16_t ancount = 0;
  uint16_t nscount = 0;
  uint16_t arcount = 0;
};

Result<Header> read_header(Reader& r) {
  SBX_TRY(r.need(kHeaderSize, "header"));
  Header h;
  h.id = r.u16();
  h.flags = r.u16();
  h.qdcount = r.u16();
  h.ancount = r.u16();
  h.nscount = r.u16();
  h.arcount = r.u16();
  return h;
}

unsigned opcode(uint16_t flags) { return (flags >> 11) & 0xf; }

bool question_label_byte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Appends the label of `len` bytes at `pos` to `text`, lower case, dot-separated, checking its bytes.
Result<void> append_label(std::string_view packet, size_t pos, size_t len, std::string* text) {
  std::string_view label = packet.substr(pos + 1, len);
  auto bad = std::find_if_not(label.begin(), label.end(), question_label_byte);
  if (bad != label.end()) {
    return make_error("the label at offset {} has byte 0x{:02x}, not a letter, digit, '-' or '_'", pos,
                      static_cast<uint8_t>(*bad));
  }
  if (!text->empty()) {
    text->push_back('.');
  }
  std::transform(label.begin(), label.end(), std::back_inserter(*text), lower);
  return ok();
}

// Walks the name at r's position, following compression pointers, and leaves r just after the name's own bytes.
// With `text`, appends the name's lower-case dotted form to it and checks the labels' bytes. Each pointer must point
// into the packet after the header and before the place the name (or the previous pointer's target) starts: RFC
// 1035's "prior occurrence", which makes loops impossible.
Result<void> read_name(Reader& r, std::string* text) {
  std::string_view packet = r.packet();
  size_t pos = r.pos();
  size_t barrier = pos;
  size_t end = 0;  // where r goes on: after the first pointer, or after the root byte
  size_t wire_length = 1;
  while (true) {
    if (pos >= packet.size()) {
      return make_error("truncated name at offset {}", pos);
    }
    uint8_t len = static_cast<uint8_t>(packet[pos]);
    if ((len & kPointerBits) == kPointerBits) {
      if (pos + 1 >= packet.size()) {
        return make_error("truncated compression pointer at offset {}", pos);
      }
      size_t target = (len & ~kPointerBits) << 8 | static_cast<uint8_t>(packet[pos + 1]);
      if (target < kHeaderSize || target >= barrier) {
        return make_error("the compression pointer at offset {} points to {}, not to an earlier name (a loop?)", pos,
                          target);
      }
      end = end == 0 ? pos + 2 : end;
      pos = barrier = target;
      continue;
    }
    if (len > kMaxLabelLength) {
      return make_error("label length byte 0x{:02x} at offset {}: a label is at most {} bytes", len, pos,
                        kMaxLabelLength);
    }
    if (len == 0) {
      r.seek(end == 0 ? pos + 1 : end);
      return ok();
    }
    wire_length += len + 1;
    if (wire_length > kMaxNameWireLength) {
      return make_error("the name at offset {} is longer than {} bytes", r.pos(), kMaxNameWireLength);
    }
    if (packet.size() - pos - 1 < len) {
      return make_error("truncated label at offset {}", pos);
    }
    if (text != nullptr) {
      SBX_TRY(append_label(packet, pos, len, text));
    }
    pos += 1 + len;
  }
}

Result<Question> read_question(Reader& r, uint16_t id) {
  Question q;
  q.id = id;
  SBX_TRY_CTX(read_name(r, &q.name), "question");
  SBX_TRY(r.need(4, "question"));
  q.qtype = r.u16();
  q.qclass = r.u16();
  return q;
}

// Walks one resource record; an A record of class IN is added to `addresses` when given.
Result<void> read_record(Reader& r, std::vector<AddressRecord>* addresses) {
  size_t start = r.pos();
  SBX_TRY_CTX(read_name(r, nullptr), "record at offset {}", start);
  SBX_TRY(r.need(10, "record"));
  uint16_t type = r.u16();
  uint16_t klass = r.u16();
  uint32_t ttl = r.u32();
  uint16_t rdlength = r.u16();
  SBX_TRY(r.need(rdlength, "record data"));
  if (addresses == nullptr || type != kTypeA || klass != kClassIn) {
    r.seek(r.pos() + rdlength);
    return ok();
  }
  if (rdlength != 4) {
    return make_error("the A record at offset {} has {} bytes of data, not 4", start, rdlength);
  }
  addresses->push_back({r.u32(), ttl > 0x7fffffff ? 0 : ttl});
  return ok();
}

Result<Header> read_message_header(Reader& r, bool response) {
  SBX_ASSIGN(Header h, read_header(r));
  if (((h.flags & kFlagQr) != 0) != response) {
    return Error(response ? "not a response (QR is clear)" : "not a query (QR is set)");
  }
  if (opcode(h.flags) != 0) {
    return make_error("opcode {} is not QUERY", opcode(h.flags));
  }
  if (h.qdcount != 1) {
    return make_error("{} questions, not 1", h.qdcount);
  }
  return h;
}

void put_u16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v & 0xff));
}

std::string_view strip_trailing_dot(std::string_view name) {
  return (!name.empty() && name.back() == '.') ? name.substr(0, name.size() - 1) : name;
}

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

Result<void> check_ldh_label(std::string_view label) {
  if (label.empty()) {
    return make_error("it has an empty label");
  }
  if (label.size() > kMaxLabelLength) {
    return make_error("label '{}' is longer than {} bytes", label, kMaxLabelLength);
  }
  auto ldh = [](char c) { return question_label_byte(c) && c != '_'; };
  if (!std::all_of(label.begin(), label.end(), ldh)) {
    return make_error("label '{}' has a character other than letters, digits and '-'", label);
  }
  if (label.front() == '-' || label.back() == '-') {
    return make_error("label '{}' starts or ends with '-'", label);
  }
  return ok();
}

// The checks of normalize_host_pattern on the name after any "*.".
Result<void> check_host_name(std::string_view name) {
  if (name.size() > kMaxNameTextLength) {
    return make_error("it is longer than {} characters", kMaxNameTextLength);
  }
  std::string_view last;
  for (size_t start = 0; start <= name.size();) {
    size_t dot = std::min(name.find('.', start), name.size());
    last = name.substr(start, dot - start);
    if (last == "*") {
      return make_error("'*' is only allowed as the whole first label, as in '*.example.com'");
    }
    SBX_TRY(check_ldh_label(last));
    start = dot + 1;
  }
  if (std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return make_error("it is an IP address or ends in a numeric label; the allow-list takes host names");
  }
  return ok();
}

}  // namespace

Result<Question> parse_query(std::string_view packet) {
  Reader r(packet);
  SBX_ASSIGN(Header h, read_message_header(r, false));
  if (h.ancount != 0 || h.nscount != 0) {
    return make_error("a query with {} answer and {} authority records", h.ancount, h.nscount);
  }
  return read_question(r, h.id);
}

Result<std::string> make_empty_response(std::string_view query, uint8_t rcode) {
  if (rcode > 0xf) {
    return make_error("rcode {} does not fit in a header (0 to 15)", rcode);
  }
  Reader r(query);
  SBX_ASSIGN(Header h, read_message_header(r, false));
  SBX_TRY(read_question(r, h.id));
  std::string out;
  out.reserve(r.pos());
  put_u16(&out, h.id);
  put_u16(&out, static_cast<uint16_t>(kFlagQr | (h.flags & (kFlagRd | kFlagCd)) | kFlagRa | rcode));
  put_u16(&out, 1);  // the question; no answer, authority or additional records
  for (int i = 0; i < 3; ++i) {
    put_u16(&out, 0);
  }
  out.append(query.substr(kHeaderSize, r.pos() - kHeaderSize));
  return out;
}

Result<Answer> parse_response(std::string_view packet) {
  Reader r(packet);
  SBX_ASSIGN(Header h, read_message_header(r, true));
  Answer a;
  SBX_ASSIGN(a.question, read_question(r, h.id));
  a.rcode = static_cast<uint8_t>(h.flags & 0xf);
  a.truncated = (h.flags & kFlagTc) != 0;
  for (unsigned i = 0; i < h.ancount; ++i) {
    SBX_TRY_CTX(read_record(r, &a.addresses), "answer {}", i + 1);
  }
  for (unsigned i = 0; i < unsigned{h.nscount} + h.arcount; ++i) {
    SBX_TRY_CTX(read_record(r, nullptr), "{} record {}", i < h.nscount ? "authority" : "additional", i + 1);
  }
  return a;
}

bool name_allowed(std::string_view name, std::string_view pattern) {
  name = strip_trailing_dot(name);
  pattern = strip_trailing_dot(pattern);
  if (pattern.empty()) {
    return false;
  }
  if (pattern.substr(0, 2) != "*.") {
    return iequal(name, pattern);
  }
  std::string_view suffix = pattern.substr(1);  // ".example.com"
  return name.size() > suffix.size() && iequal(name.substr(name.size() - suffix.size()), suffix);
}

Result<std::string> normalize_host_pattern(std::string_view pattern) {
  bool wildcard = pattern.substr(0, 2) == "*.";
  std::string_view name = strip_trailing_dot(wildcard ? pattern.substr(2) : pattern);
  Result<void> checked = name.empty() ? Result<void>(make_error("it names no host")) : check_host_name(name);
  if (!checked.ok()) {
    return std::move(checked).error().context(fmt::format("host pattern '{}'", pattern));
  }
  std::string out = wildcard ? "*." : "";
  std::transform(name.begin(), name.end(), std::back_inserter(out), lower);
  return out;
}

}  // namespace sbx::daemon::dns
