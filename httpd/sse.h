#pragma once
// Server-Sent Events framing (the WHATWG "text/event-stream" format): pure.
#include <string>
#include <string_view>

namespace sbx::httpd {

// "event: NAME\ndata: LINE\n...\n\n": each line of `data` becomes a data: line (CR, LF and CRLF all split lines,
// as a receiver would), so no data can end the event early or forge a field.
std::string sse_event(std::string_view event, std::string_view data);

// ": TEXT\n\n", a comment receivers ignore: the stream's keep-alive (and how a gone client is noticed).
std::string sse_comment(std::string_view text);

}  // namespace sbx::httpd
