#include "httpd/sse.h"

namespace sbx::httpd {

namespace {

// Appends "FIELD: " + each line of `text` + "\n"; at least one line.
void append_lines(std::string& out, std::string_view field, std::string_view text) {
  size_t pos = 0;
  while (true) {
    size_t end = text.find_first_of("\r\n", pos);
    out += field;
    out += text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    out += '\n';
    if (end == std::string_view::npos) {
      return;
    }
    pos = end + (text[end] == '\r' && end + 1 < text.size() && text[end + 1] == '\n' ? 2 : 1);
  }
}

std::string one_line(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\r' || c == '\n') {
      c = ' ';
    }
  }
  return out;
}

}  // namespace

std::string sse_event(std::string_view event, std::string_view data) {
  std::string out;
  out.reserve(event.size() + data.size() + 24);
  out += "event: ";
  out += one_line(event);
  out += '\n';
  append_lines(out, "data: ", data);
  out += '\n';
  return out;
}

std::string sse_comment(std::string_view text) {
  std::string out = ": ";
  out += one_line(text);
  out += "\n\n";
  return out;
}

}  // namespace sbx::httpd
