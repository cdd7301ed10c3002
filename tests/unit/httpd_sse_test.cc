// Server-Sent Events framing.
#include <doctest/doctest.h>

#include "httpd/sse.h"

using namespace sbx::httpd;

TEST_SUITE("httpd.sse") {

TEST_CASE("an event is its name, a data line and a blank line") {
  CHECK(sse_event("stdout", "{\"data\":\"1\\n\"}") == "event: stdout\ndata: {\"data\":\"1\\n\"}\n\n");
}

TEST_CASE("data with line breaks of any kind becomes several data lines, so it cannot end the event") {
  CHECK(sse_event("x", "a\nb\r\nc\rd") == "event: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
  CHECK(sse_event("x", "a\n\nevent: forged") == "event: x\ndata: a\ndata: \ndata: event: forged\n\n");
  CHECK(sse_event("x", "") == "event: x\ndata: \n\n");
}

TEST_CASE("an event name or comment cannot break its line") {
  CHECK(sse_event("a\nb", "d") == "event: a b\ndata: d\n\n");
  CHECK(sse_comment("keep\nalive") == ": keep alive\n\n");
}

}
