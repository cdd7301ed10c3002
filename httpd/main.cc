// sbx-httpd: the HTTP shim in front of sbxd. An unprivileged process that serves the REST API of sbx-httpd(8) and
// talks to sbxd over its unix socket as a trusted uid, acting for the tenant of each request's API key.
#include <getopt.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "api/protocol.h"
#include "httpd/config.h"
#include "httpd/log.h"
#include "httpd/server.h"

namespace {

using sbx::httpd::HttpdConfig;

constexpr const char* kDefaultConfig = "/etc/sbx/httpd.toml";

void usage(FILE* out) {
  std::fprintf(out,
               "usage: sbx-httpd [options]\n"
               "  -c, --config FILE              configuration (default %s, if it exists)\n"
               "  -l, --listen HOST:PORT         address to serve on (default 127.0.0.1:8080)\n"
               "      --socket PATH              sbxd's socket (default $SBX_SOCKET or /run/sbx/sbxd.sock)\n"
               "      --threads N                worker threads (default 64)\n"
               "      --rate N                   requests per second per API key (default 20)\n"
               "      --burst N                  requests an API key may make at once (default 40)\n"
               "      --auth-failures N          failed authentications per client address ... (default 10)\n"
               "      --auth-failure-window SEC  ... per this many seconds (default 60)\n"
               "      --max-body SIZE            largest request body and file download (default 64M)\n"
               "      --heartbeat SEC            keep-alive interval of event streams (default 15)\n"
               "      --allow-root               run even as root (it is meant to run as its own user)\n"
               "  -V, --version                  print the version\n"
               "  -h, --help                     this help\n",
               kDefaultConfig);
}

enum FlagId { kSocket = 1000, kThreads, kRate, kBurst, kAuthFailures, kAuthWindow, kMaxBody, kHeartbeat, kAllowRoot };

bool number(const char* flag, const char* text, double* out) {
  char* end = nullptr;
  double v = std::strtod(text, &end);
  if (end == text || *end != '\0') {
    std::fprintf(stderr, "sbx-httpd: --%s: '%s' is not a number\n", flag, text);
    return false;
  }
  *out = v;
  return true;
}

bool integer(const char* flag, const char* text, int64_t* out) {
  char* end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0') {
    std::fprintf(stderr, "sbx-httpd: --%s: '%s' is not an integer\n", flag, text);
    return false;
  }
  *out = v;
  return true;
}

// Reads the config file, then applies the flags over it. Returns the exit status to use, or -1 to go on.
int configure(int argc, char** argv, HttpdConfig* c) {
  static const option opts[] = {
      {"config", required_argument, nullptr, 'c'},       {"listen", required_argument, nullptr, 'l'},
      {"socket", required_argument, nullptr, kSocket},   {"threads", required_argument, nullptr, kThreads},
      {"rate", required_argument, nullptr, kRate},       {"burst", required_argument, nullptr, kBurst},
      {"auth-failures", required_argument, nullptr, kAuthFailures},
      {"auth-failure-window", required_argument, nullptr, kAuthWindow},
      {"max-body", required_argument, nullptr, kMaxBody}, {"heartbeat", required_argument, nullptr, kHeartbeat},
      {"allow-root", no_argument, nullptr, kAllowRoot},  {"version", no_argument, nullptr, 'V'},
      {"help", no_argument, nullptr, 'h'},               {nullptr, 0, nullptr, 0}};
  // First pass: only --config, --help, --version, so that the file is read before the other flags apply.
  std::string config_path = kDefaultConfig;
  bool config_given = false;
  int ch;
  while ((ch = getopt_long(argc, argv, "c:l:Vh", opts, nullptr)) != -1) {
    if (ch == 'c') {
      config_path = optarg;
      config_given = true;
    } else if (ch == 'V') {
      std::printf("sbx-httpd %s\n", SBX_VERSION);
      return 0;
    } else if (ch == 'h') {
      usage(stdout);
      return 0;
    } else if (ch == '?') {
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) {
    std::fprintf(stderr, "sbx-httpd: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  if (config_given || ::access(config_path.c_str(), F_OK) == 0) {
    auto loaded = sbx::httpd::load_config(config_path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "sbx-httpd: %s\n", loaded.error().message().c_str());
      return 1;
    }
    *c = std::move(*loaded);
  }
  optind = 1;
  bool good = true;
  while ((ch = getopt_long(argc, argv, "c:l:Vh", opts, nullptr)) != -1) {
    switch (ch) {
      case 'l': c->listen = optarg; break;
      case kSocket: c->socket = optarg; break;
      case kThreads: good = good && integer("threads", optarg, &c->threads); break;
      case kRate: good = good && number("rate", optarg, &c->rate); break;
      case kBurst: good = good && number("burst", optarg, &c->burst); break;
      case kAuthFailures: good = good && integer("auth-failures", optarg, &c->auth_failures); break;
      case kAuthWindow: good = good && number("auth-failure-window", optarg, &c->auth_failure_window); break;
      case kHeartbeat: good = good && number("heartbeat", optarg, &c->heartbeat); break;
      case kAllowRoot: c->allow_root = true; break;
      case kMaxBody: {
        auto size = sbx::api::parse_size(optarg);
        if (!size.ok()) {
          std::fprintf(stderr, "sbx-httpd: --max-body: %s\n", size.error().message().c_str());
          good = false;
        } else {
          c->max_body = *size;
        }
        break;
      }
      default: break;
    }
  }
  if (!good) {
    return 2;
  }
  if (auto v = sbx::httpd::validate(*c); !v.ok()) {
    std::fprintf(stderr, "sbx-httpd: %s\n", v.error().message().c_str());
    return 2;
  }
  return -1;
}

// Waits for SIGTERM or SIGINT (blocked in every thread) and stops the server; joined on destruction.
class SignalWatcher {
 public:
  SignalWatcher(sbx::httpd::HttpServer& server, const sigset_t& set)
      : thread_([this, &server, set] {
          timespec tick{0, 200 * 1000 * 1000};
          while (!done_) {
            int sig = ::sigtimedwait(&set, nullptr, &tick);
            if (sig == SIGTERM || sig == SIGINT) {
              sbx::httpd::log_line("stopping on signal {}", sig);
              server.stop();
              return;
            }
          }
        }) {}
  ~SignalWatcher() {
    done_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  HttpdConfig config;
  if (int rc = configure(argc, argv, &config); rc >= 0) {
    return rc;
  }
  if (::geteuid() == 0 && !config.allow_root) {
    std::fprintf(stderr, "sbx-httpd: refusing to run as root: run it as its own user (sbx-httpd), one of sbxd's "
                         "trusted_uids in the socket's group, or pass --allow-root\n");
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread starts: all inherit it

  sbx::httpd::HttpServer server(config);
  auto port = server.bind();
  if (!port.ok()) {
    std::fprintf(stderr, "sbx-httpd: %s\n", port.error().message().c_str());
    return 1;
  }
  SignalWatcher watcher(server, set);
  if (auto r = server.serve(); !r.ok()) {
    std::fprintf(stderr, "sbx-httpd: %s\n", r.error().message().c_str());
    return 1;
  }
  return 0;
}
