/*
 * tvmedge-rpc-server: TVM's RPC server for boards without Python (RISC-V boards, small images).
 *
 *   tvmedge-rpc-server [--host 127.0.0.1] [--port 9090] [--port-end 9190] [--tracker HOST:PORT] [--key KEY]
 *
 * The RPC protocol itself is TVM's: after the handshake every session runs TVM's own C++ server loop
 * (`rpc.ServerLoop` in libtvm_runtime.so), so clients are TVM's (`tvm.rpc.connect`, `connect_tracker().request`,
 * MetaSchedule's RPCRunner, `tvmedge run --rpc/--tracker`). What TVM implements only in Python
 * (tvm/rpc/server.py) is reproduced here: the connection handshake (magic, "client:<matchkey>" key, reply with
 * "server:<key>"), the tracker registration (UPDATE_INFO, PUT with a match key, GET_PENDING_MATCHKEYS pings,
 * a new match key when one is taken but unused) and the server environment (`tvm.rpc.server.workpath`,
 * `tvm.rpc.server.load_module`; upload/download/remove are in the runtime). TVM's C++ RPC app (apps/cpp_rpc)
 * does the same but is not part of the wheel's sources.
 *
 * Each session runs in a forked child in its own temporary folder, one session at a time (as TVM's server);
 * "-timeout=S" from the client ends a session after S seconds. The server executes the modules its clients
 * upload: listen on loopback or a trusted network only.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace ffi = tvm::ffi;

namespace {

constexpr int32_t kRPCMagic = 0xFF271;
constexpr int32_t kTrackerMagic = 0x2F271;
constexpr int32_t kCodeSuccess = kRPCMagic + 0;
constexpr int32_t kCodeMismatch = kRPCMagic + 2;
// tvm.rpc.base.TrackerCode
constexpr int kSuccess = 0, kPut = 3, kUpdateInfo = 5, kGetPendingMatchkeys = 7;

void Log(const std::string& message) {
  std::fprintf(stderr, "tvmedge-rpc-server: %s\n", message.c_str());
  std::fflush(stderr);
}

struct SocketError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void SendAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t sent = send(fd, p, n, MSG_NOSIGNAL);
    if (sent <= 0) throw SocketError("connection lost while sending");
    p += sent;
    n -= size_t(sent);
  }
}

void RecvAll(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t got = recv(fd, p, n, 0);
    if (got <= 0) throw SocketError("connection reset");
    p += got;
    n -= size_t(got);
  }
}

void SendInt(int fd, int32_t value) { SendAll(fd, &value, 4); }  // little-endian on every board we target

int32_t RecvInt(int fd) {
  int32_t value;
  RecvAll(fd, &value, 4);
  return value;
}

void SendJson(int fd, const ffi::Any& value) {  // tvm.rpc.base.sendjson: int32 length + JSON text
  std::string text(ffi::json::Stringify(value));
  SendInt(fd, int32_t(text.size()));
  SendAll(fd, text.data(), text.size());
}

ffi::Any RecvJson(int fd) {
  int32_t size = RecvInt(fd);
  if (size < 0 || size > (1 << 24)) throw SocketError("bad message length from the tracker");
  std::string text(size_t(size), '\0');
  RecvAll(fd, text.data(), text.size());
  ffi::String error;
  ffi::Any value = ffi::json::Parse(text, &error);
  if (!error.empty()) throw SocketError("bad JSON from the tracker: " + std::string(error));
  return value;
}

int ConnectTo(const std::string& host, int port) {
  addrinfo hints{}, *found = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found)
    throw SocketError("cannot resolve " + host);
  int fd = -1;
  for (addrinfo* a = found; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    if (fd >= 0) close(fd);
    fd = -1;
  }
  freeaddrinfo(found);
  if (fd < 0) throw SocketError("cannot connect to " + host + ":" + std::to_string(port));
  return fd;
}

// ------------------------------------------------------------------------------------------------------------
// the tracker (tvm/rpc/server.py _listen_loop / _accept_conn)

class Tracker {
 public:
  Tracker(std::string host, int port, std::string key, int server_port)
      : host_(std::move(host)), port_(port), key_(std::move(key)), server_port_(server_port) {}
  ~Tracker() { Close(); }

  bool connected() const { return fd_ >= 0; }

  void Connect() {
    fd_ = ConnectTo(host_, port_);
    SendInt(fd_, kTrackerMagic);
    if (RecvInt(fd_) != kTrackerMagic) throw std::runtime_error(host_ + ":" + std::to_string(port_) + " is not a TVM RPC tracker");
    ffi::Map<ffi::Any, ffi::Any> info;
    info.Set(ffi::String("key"), ffi::String("server:" + key_));
    info.Set(ffi::String("addr"), ffi::Array<ffi::Any>{nullptr, server_port_});
    Expect(ffi::Array<ffi::Any>{kUpdateInfo, info});
  }

  // A new match key: a client the tracker hands this server to must present it.
  void Put() {
    matchkey_ = key_ + ":" + std::to_string(std::uniform_real_distribution<double>(0, 1)(rng_));
    Expect(ffi::Array<ffi::Any>{kPut, ffi::String(key_), ffi::Array<ffi::Any>{server_port_, ffi::String(matchkey_)},
                                nullptr});
    unmatched_ = 0;
  }

  // Called every ping period without a connection: re-register if a client took the key and never came.
  void Ping(double period_s) {
    SendJson(fd_, ffi::Array<ffi::Any>{kGetPendingMatchkeys});
    ffi::Any pending = RecvJson(fd_);
    bool listed = false;
    if (auto keys = pending.as<ffi::Array<ffi::Any>>()) {
      for (const ffi::Any& k : *keys) listed = listed || k.as<ffi::String>().value_or("") == matchkey_;
    }
    unmatched_ = listed ? 0 : unmatched_ + 1;
    if (unmatched_ * period_s > 4 + period_s) {
      Log("no incoming connection for a taken key: registering a new one");
      Put();
    }
  }

  const std::string& matchkey() const { return matchkey_; }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  void Expect(const ffi::Any& message) {
    SendJson(fd_, message);
    if (RecvJson(fd_).as<int64_t>().value_or(-1) != kSuccess) throw SocketError("the tracker refused the server");
  }

  std::string host_;
  int port_;
  std::string key_;
  int server_port_;
  int fd_ = -1;
  std::string matchkey_;
  int unmatched_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
};

// ------------------------------------------------------------------------------------------------------------
// one session

std::string g_work_dir;  // of the session being served (the child's)

void RegisterServerEnv() {
  ffi::Function::SetGlobal("tvm.rpc.server.workpath", ffi::Function::FromTyped([](ffi::String path) {
    return ffi::String(g_work_dir + "/" + std::string(path));
  }), true);
  ffi::Function::SetGlobal("tvm.rpc.server.load_module", ffi::Function::FromTyped([](ffi::String name) {
    std::string path = g_work_dir + "/" + std::string(name);
    Log("load_module " + path);
    return ffi::Module::LoadFromFile(path);
  }), true);
}

void Serve(int conn, const std::string& peer, double timeout_s) {
  char pattern[] = "/tmp/tvmedge-rpc-XXXXXX";
  if (!mkdtemp(pattern)) throw std::runtime_error("cannot create a session folder in /tmp");
  std::string work_dir = pattern;
  Log("session from " + peer + " in " + work_dir);
  pid_t child = fork();
  if (child == 0) {  // the session: TVM's own server loop on this socket, in its folder
    g_work_dir = work_dir;
    if (chdir(work_dir.c_str()) != 0) _exit(1);
    try {
      ffi::Function::GetGlobalRequired("rpc.ServerLoop")(conn);
    } catch (const std::exception& err) {
      Log(std::string("session ended with an error: ") + err.what());
      _exit(1);
    }
    _exit(0);
  }
  if (child < 0) throw std::runtime_error("fork failed");
  auto start = std::chrono::steady_clock::now();
  int status = 0;
  while (waitpid(child, &status, WNOHANG) == 0) {
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (timeout_s > 0 && elapsed > timeout_s) {
      Log("session timed out after " + std::to_string(timeout_s) + " s");
      try {
        ffi::Function::GetGlobalRequired("rpc.ReturnException")(
            conn, ffi::String("RPCSessionTimeoutError: Your " + std::to_string(timeout_s) +
                              "s session has expired, try to increase the \"session_timeout\" value."));
      } catch (const std::exception&) {
      }
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::error_code ignored;
  std::filesystem::remove_all(work_dir, ignored);
  Log("finished serving " + peer);
}

// The client's side of the handshake: magic, then "client:<matchkey> [-timeout=S]".
bool Handshake(int conn, const std::string& matchkey, const std::string& key, double* timeout_s) {
  if (RecvInt(conn) != kRPCMagic) return false;
  int32_t length = RecvInt(conn);
  if (length < 0 || length > 4096) return false;
  std::string text(size_t(length), '\0');
  RecvAll(conn, text.data(), text.size());
  std::vector<std::string> words;
  for (size_t i = 0; i < text.size();) {
    size_t j = text.find(' ', i);
    if (j == std::string::npos) j = text.size();
    if (j > i) words.push_back(text.substr(i, j - i));
    i = j + 1;
  }
  if (words.empty() || words[0] != "client:" + matchkey) {
    SendInt(conn, kCodeMismatch);
    return false;
  }
  *timeout_s = 0;
  for (const std::string& w : words)
    if (w.rfind("-timeout=", 0) == 0) *timeout_s = std::atof(w.c_str() + 9);
  std::string server_key = "server:" + key;
  SendInt(conn, kCodeSuccess);
  SendInt(conn, int32_t(server_key.size()));
  SendAll(conn, server_key.data(), server_key.size());
  return true;
}

int Listen(const std::string& host, int port, int port_end, int* bound) {
  for (int p = port; p < std::max(port + 1, port_end); ++p) {
    addrinfo hints{}, *found = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (getaddrinfo(host.c_str(), std::to_string(p).c_str(), &hints, &found) != 0 || !found) continue;
    int fd = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    bool ok = fd >= 0 && bind(fd, found->ai_addr, found->ai_addrlen) == 0 && listen(fd, 8) == 0;
    freeaddrinfo(found);
    if (ok) {
      *bound = p;
      return fd;
    }
    if (fd >= 0) close(fd);
  }
  throw std::runtime_error("cannot listen on " + host + " ports " + std::to_string(port) + ".." +
                           std::to_string(port_end));
}

int Main(int argc, char** argv) {
  std::string host = "127.0.0.1", tracker_addr, key;
  int port = 9090, port_end = -1;
  const char* usage =
      "usage: tvmedge-rpc-server [--host H] [--port P] [--port-end E] [--tracker HOST:PORT] [--key KEY]";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value; " + usage);
      return argv[++i];
    };
    if (a == "--host") host = value();
    else if (a == "--port") port = std::atoi(value().c_str());
    else if (a == "--port-end") port_end = std::atoi(value().c_str());
    else if (a == "--tracker") tracker_addr = value();
    else if (a == "--key") key = value();
    else if (a == "-h" || a == "--help") { std::puts(usage); return 0; }
    else throw std::invalid_argument("unknown option " + a + "; " + usage);
  }
  if (port <= 0 || port > 65535) throw std::invalid_argument("--port must be 1..65535");
  if (port_end < 0) port_end = port + 100;
  signal(SIGPIPE, SIG_IGN);
  RegisterServerEnv();
  int bound = 0;
  int listener = Listen(host, port, port_end, &bound);
  std::unique_ptr<Tracker> tracker;
  if (!tracker_addr.empty()) {
    size_t colon = tracker_addr.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument("--tracker must look like HOST:PORT");
    tracker = std::make_unique<Tracker>(tracker_addr.substr(0, colon), std::atoi(tracker_addr.c_str() + colon + 1),
                                        key, bound);
  }
  std::printf("listening on %s:%d%s\n", host.c_str(), bound,
              tracker ? (", registered as '" + key + "' at " + tracker_addr).c_str() : "");
  std::fflush(stdout);

  const double ping_s = 2.0;
  while (true) {
    try {
      if (tracker && !tracker->connected()) {
        tracker->Connect();
        tracker->Put();
      }
      pollfd p{listener, POLLIN, 0};
      int ready = poll(&p, 1, tracker ? int(ping_s * 1000) : -1);
      if (ready == 0) {
        tracker->Ping(ping_s);
        continue;
      }
      if (ready < 0) continue;
      sockaddr_storage addr{};
      socklen_t len = sizeof(addr);
      int conn = accept(listener, reinterpret_cast<sockaddr*>(&addr), &len);
      if (conn < 0) continue;
      char name[NI_MAXHOST] = "?";
      getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, name, sizeof(name), nullptr, 0, NI_NUMERICHOST);
      double timeout_s = 0;
      bool accepted = false;
      try {
        accepted = Handshake(conn, tracker ? tracker->matchkey() : key, key, &timeout_s);
      } catch (const SocketError&) {
      }
      if (accepted) {
        Serve(conn, name, timeout_s);
        if (tracker) tracker->Put();  // a fresh match key for the next client, as TVM's server does
      } else {
        Log(std::string("refused a connection from ") + name + " (not a TVM RPC client or a wrong key)");
      }
      close(conn);
    } catch (const SocketError& err) {  // the tracker went away: reconnect (as TVM's server retries)
      Log(std::string("tracker: ") + err.what() + "; reconnecting");
      if (tracker) tracker->Close();
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::invalid_argument& err) {
    std::fprintf(stderr, "Error: ConfigError: %s\n", err.what());
  } catch (const std::exception& err) {
    std::fprintf(stderr, "Error: %s\n", err.what());
  }
  return 1;
}
