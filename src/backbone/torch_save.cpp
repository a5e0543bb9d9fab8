// torch.save state_dicts read by a restricted unpickler of our own.
//
// libtorch's unpickler is built for trusted files: fuzzing it through
// torch::jit::pickle_load found a 4 GB allocation from a 1 kB file, reads
// past its buffer, a bad free and crashes on tensors without data. This
// reader runs only what a state_dict needs (dicts, tuples, strings, numbers,
// storages, _rebuild_tensor_v2, OrderedDict and the C++ pickler's
// restore_type_tag), refuses every other global, and checks every length,
// memo id, storage and tensor against the file's bytes.
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include "backbone/tensor_io.h"
#include "stepverify/errors.h"
#include "util/sequences.h"

namespace stepverify {
namespace {

uint64_t le(std::string_view b, size_t at, int n) { return detail::read_le(b.data() + at, n); }

// The stored (uncompressed) entries of a zip archive, by name: where their
// bytes start and how many there are, all inside the archive.
std::map<std::string, std::string_view> zip_entries(std::string_view b, const std::string& where) {
  auto fail = [&](const std::string& what) { return FormatError(where + ": not a torch.save file: " + what); };
  constexpr size_t kEnd = 22;  // end-of-central-directory record without its comment
  if (b.size() < kEnd) throw fail("too short for a zip archive");
  size_t eocd = std::string_view::npos;
  for (size_t k = b.size() - kEnd + 1; k-- > 0 && b.size() - k <= kEnd + 0xffff;)
    if (le(b, k, 4) == 0x06054b50) {
      eocd = k;
      break;
    }
  if (eocd == std::string_view::npos) throw fail("no zip end-of-directory record");
  const uint64_t entries = le(b, eocd + 10, 2), cd_size = le(b, eocd + 12, 4), cd_at = le(b, eocd + 16, 4);
  if (cd_at == 0xffffffff || cd_size == 0xffffffff || entries == 0xffff)
    throw fail("a zip64 archive (over 4 GiB or 65535 entries): not read");
  if (cd_at > eocd || cd_size > eocd - cd_at) throw fail("the zip directory lies outside the file");
  std::map<std::string, std::string_view> out;
  size_t at = cd_at;
  const size_t cd_end = cd_at + cd_size;
  for (uint64_t e = 0; e < entries; ++e) {
    if (at + 46 > cd_end || le(b, at, 4) != 0x02014b50) throw fail("a bad zip directory entry");
    const uint64_t method = le(b, at + 10, 2), csize = le(b, at + 20, 4), usize = le(b, at + 24, 4);
    const uint64_t nlen = le(b, at + 28, 2), xlen = le(b, at + 30, 2), clen = le(b, at + 32, 2);
    const uint64_t local = le(b, at + 42, 4);
    if (at + 46 + nlen > cd_end) throw fail("a bad zip directory entry");
    const std::string name(b.substr(at + 46, nlen));
    at += 46 + nlen + xlen + clen;
    if (method != 0 || csize != usize) throw fail("entry " + name + " is compressed (torch.save stores entries)");
    if (local > b.size() || b.size() - local < 30 || le(b, local, 4) != 0x04034b50)
      throw fail("entry " + name + ": no local header");
    const uint64_t data = local + 30 + le(b, local + 26, 2) + le(b, local + 28, 2);
    if (data > b.size() || usize > b.size() - data) throw fail("entry " + name + " runs past the end of the file");
    out[name] = b.substr(data, usize);
  }
  return out;
}

struct Obj;
using Ref = std::shared_ptr<Obj>;
struct Obj {
  enum class K { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Tensor } k = K::None;
  int64_t i = 0;
  double f = 0;
  std::string s;  // Str; Global: "module name"
  std::vector<Ref> items;
  std::vector<std::pair<Ref, Ref>> dict;
  at::Tensor t;
  int depth = 0;  // nesting of tuples, lists and dicts
};

constexpr int kMaxDepth = 512;

c10::ScalarType storage_dtype(const std::string& global) {
  static const std::map<std::string, c10::ScalarType> types = {
      {"torch FloatStorage", torch::kFloat}, {"torch DoubleStorage", torch::kDouble},
      {"torch HalfStorage", torch::kHalf},   {"torch BFloat16Storage", torch::kBFloat16},
      {"torch LongStorage", torch::kLong},   {"torch IntStorage", torch::kInt},
      {"torch ShortStorage", torch::kShort}, {"torch CharStorage", torch::kChar},
      {"torch ByteStorage", torch::kByte},   {"torch BoolStorage", torch::kBool}};
  auto it = types.find(global);
  if (it == types.end()) throw InputError("storage type '" + global + "' is not read");
  return it->second;
}

class Unpickler {
 public:
  Unpickler(std::string_view p, const std::map<std::string, std::string_view>& zip, std::string prefix)
      : p_(p), zip_(zip), prefix_(std::move(prefix)) {}
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;
  // The memo lets a pickle put a list inside itself: a cycle of shared_ptrs.
  // Emptying every container at the end frees them all.
  ~Unpickler() {
    for (const auto& o : made_) {
      o->items.clear();
      o->dict.clear();
    }
  }

  Ref run() {
    while (true) {
      if (i_ >= p_.size()) throw err("no STOP opcode");
      const auto op = static_cast<uint8_t>(p_[i_++]);
      switch (op) {
        case '.':
          if (stack_.size() != 1) throw err("STOP with " + std::to_string(stack_.size()) + " values on the stack");
          return stack_.back();
        case 0x80:
          take(1);
          break;  // PROTO
        case 0x95:
          take(8);
          break;  // FRAME
        case '(':
          marks_.push_back(stack_.size());
          break;
        case 'N':
          push(make(Obj::K::None));
          break;
        case 0x88:
        case 0x89: {  // NEWTRUE, NEWFALSE
          auto o = make(Obj::K::Bool);
          o->i = op == 0x88;
          push(o);
          break;
        }
        case 'K':
          push_int(static_cast<int64_t>(le(take(1), 0, 1)));
          break;
        case 'M':
          push_int(static_cast<int64_t>(le(take(2), 0, 2)));
          break;
        case 'J':
          push_int(static_cast<int32_t>(le(take(4), 0, 4)));
          break;
        case 0x8a: {  // LONG1: n bytes, two's complement
          const auto n = le(take(1), 0, 1);
          if (n > 8) throw err("an integer of " + std::to_string(n) + " bytes");
          const auto bytes = take(n);
          uint64_t v = n ? le(bytes, 0, static_cast<int>(n)) : 0;
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);
          push_int(static_cast<int64_t>(v));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          const auto b = take(8);
          uint64_t v = 0;
          for (int k = 0; k < 8; ++k) v = (v << 8) | static_cast<uint8_t>(b[static_cast<size_t>(k)]);
          auto o = make(Obj::K::Float);
          std::memcpy(&o->f, &v, 8);
          push(o);
          break;
        }
        case 'X':
          push_str(take(le(take(4), 0, 4)));
          break;  // BINUNICODE
        case 0x8c:
          push_str(take(le(take(1), 0, 1)));
          break;  // SHORT_BINUNICODE
        case 0x8d:
          push_str(take(le(take(8), 0, 8)));
          break;     // BINUNICODE8
        case 'c': {  // GLOBAL module\nname\n
          auto o = make(Obj::K::Global);
          const std::string module = line();  // two statements: the order matters
          o->s = module + " " + line();
          push(o);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop(), module = pop();
          if (module->k != Obj::K::Str || name->k != Obj::K::Str) throw err("STACK_GLOBAL of non-strings");
          auto o = make(Obj::K::Global);
          o->s = module->s + " " + name->s;
          push(o);
          break;
        }
        case ')':
          push(make(Obj::K::Tuple));
          break;
        case ']':
          push(make(Obj::K::List));
          break;
        case '}':
          push(make(Obj::K::Dict));
          break;
        case 't':
          push(container(Obj::K::Tuple, pop_mark()));
          break;
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          std::vector<Ref> items(static_cast<size_t>(op - 0x84));
          for (size_t k = items.size(); k-- > 0;) items[k] = pop();
          push(container(Obj::K::Tuple, std::move(items)));
          break;
        }
        case 'l':
          push(container(Obj::K::List, pop_mark()));
          break;
        case 'a': {  // APPEND
          auto v = pop();
          append(top(), {v});
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_mark();
          append(top(), items);
          break;
        }
        case 's': {  // SETITEM
          auto v = pop(), k = pop();
          set_items(top(), {k, v});
          break;
        }
        case 'u': {  // SETITEMS (the items first: they sit above the dict)
          auto items = pop_mark();
          set_items(top(), items);
          break;
        }
        case 'd': {  // DICT
          auto d = make(Obj::K::Dict);
          set_items(d, pop_mark());
          push(d);
          break;
        }
        case 'q':
          memo_put(le(take(1), 0, 1));
          break;
        case 'r':
          memo_put(le(take(4), 0, 4));
          break;
        case 0x94:
          memo_put(memo_.size());
          break;  // MEMOIZE
        case 'h':
          push(memo_get(le(take(1), 0, 1)));
          break;
        case 'j':
          push(memo_get(le(take(4), 0, 4)));
          break;
        case '0':
          pop();
          break;  // POP
        case 'Q':
          push(persistent_load(pop()));
          break;     // BINPERSID
        case 'R': {  // REDUCE
          auto args = pop(), fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 'b':
          pop();
          top();
          break;  // BUILD: state ignored (OrderedDict _metadata)
        default:
          throw err("pickle opcode " + std::to_string(op) + " is not read in a state_dict");
      }
    }
  }

 private:
  FormatError err(const std::string& what) const {
    return FormatError("data.pkl byte " + std::to_string(i_) + ": " + what);
  }
  std::string_view take(uint64_t n) {
    if (n > p_.size() - i_) throw err("runs past the end (" + std::to_string(n) + " bytes wanted)");
    auto out = p_.substr(i_, static_cast<size_t>(n));
    i_ += static_cast<size_t>(n);
    return out;
  }
  std::string line() {
    const auto nl = p_.find('\n', i_);
    if (nl == std::string_view::npos) throw err("a GLOBAL without its newline");
    std::string out(p_.substr(i_, nl - i_));
    i_ = nl + 1;
    return out;
  }
  Ref make(Obj::K k) {
    auto o = std::make_shared<Obj>();
    o->k = k;
    made_.push_back(o);
    return o;
  }
  void push(Ref o) { stack_.push_back(std::move(o)); }
  void push_int(int64_t v) {
    auto o = make(Obj::K::Int);
    o->i = v;
    push(o);
  }
  void push_str(std::string_view s) {
    auto o = make(Obj::K::Str);
    o->s = std::string(s);
    push(o);
  }
  Ref pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) throw err("pop from an empty stack");
    auto o = std::move(stack_.back());
    stack_.pop_back();
    return o;
  }
  Ref& top() {
    if (stack_.empty()) throw err("an empty stack");
    return stack_.back();
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty()) throw err("no MARK");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Ref> items(stack_.begin() + static_cast<long>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  int deepen(int depth) {
    if (depth + 1 > kMaxDepth) throw err("values nested deeper than " + std::to_string(kMaxDepth));
    return depth + 1;
  }
  Ref container(Obj::K k, std::vector<Ref> items) {
    auto o = make(k);
    for (const auto& x : items) o->depth = std::max(o->depth, deepen(x->depth));
    o->items = std::move(items);
    return o;
  }
  void append(const Ref& list, const std::vector<Ref>& items) {
    if (list->k != Obj::K::List) throw err("APPEND to a non-list");
    for (const auto& x : items) list->depth = std::max(list->depth, deepen(x->depth));
    list->items.insert(list->items.end(), items.begin(), items.end());
  }
  void set_items(const Ref& d, const std::vector<Ref>& kv) {
    if (d->k != Obj::K::Dict) throw err("SETITEM on a non-dict");
    if (kv.size() % 2) throw err("SETITEMS with an odd count");
    for (size_t k = 0; k < kv.size(); k += 2) {
      d->depth = std::max({d->depth, deepen(kv[k]->depth), deepen(kv[k + 1]->depth)});
      d->dict.emplace_back(kv[k], kv[k + 1]);
    }
  }
  void memo_put(uint64_t id) {
    if (id > memo_.size()) throw err("memo id " + std::to_string(id) + " out of order");
    if (id == memo_.size())
      memo_.push_back(top());
    else
      memo_[id] = top();
  }
  Ref memo_get(uint64_t id) {
    if (id >= memo_.size()) throw err("memo id " + std::to_string(id) + " never stored");
    return memo_[id];
  }
  int64_t as_int(const Ref& o, const char* what) const {
    if (o->k != Obj::K::Int && o->k != Obj::K::Bool) throw err(std::string(what) + " is not an integer");
    return o->i;
  }
  std::vector<int64_t> ints(const Ref& o, const char* what) const {
    if (o->k != Obj::K::Tuple && o->k != Obj::K::List) throw err(std::string(what) + " is not a tuple");
    std::vector<int64_t> out;
    for (const auto& x : o->items) out.push_back(as_int(x, what));
    return out;
  }
  // ('storage', torch.XStorage, key, location, numel): a 1-D tensor over the
  // record ARCHIVE/data/KEY, shared by every tensor that names it.
  Ref persistent_load(const Ref& pid) {
    if (pid->k != Obj::K::Tuple || pid->items.size() != 5 || pid->items[0]->k != Obj::K::Str ||
        pid->items[0]->s != "storage" || pid->items[1]->k != Obj::K::Global || pid->items[2]->k != Obj::K::Str)
      throw err("a persistent id that is not a storage");
    const std::string key = pid->items[2]->s;
    auto& cached = storages_[key];
    if (!cached) {
      c10::ScalarType dtype;
      try {
        dtype = storage_dtype(pid->items[1]->s);
      } catch (const InputError& e) {
        throw err(e.what());
      }
      const int64_t numel = as_int(pid->items[4], "a storage's size");
      auto rec = zip_.find(prefix_ + "data/" + key);
      if (rec == zip_.end()) throw err("storage " + key + " has no record " + prefix_ + "data/" + key);
      const auto size = static_cast<int64_t>(c10::elementSize(dtype));
      if (numel < 0 || static_cast<uint64_t>(numel) > rec->second.size() / static_cast<uint64_t>(size))
        throw err("storage " + key + " claims " + std::to_string(numel) + " elements; its record holds " +
                  std::to_string(rec->second.size()) + " bytes");
      cached = make(Obj::K::Tensor);
      cached->t = torch::empty({numel}, dtype);
      if (numel > 0) std::memcpy(cached->t.data_ptr(), rec->second.data(), static_cast<size_t>(numel * size));
    }
    return cached;
  }
  Ref reduce(const Ref& fn, const Ref& args) {
    if (fn->k != Obj::K::Global) throw err("REDUCE of a non-global");
    if (args->k != Obj::K::Tuple) throw err("REDUCE arguments are not a tuple");
    const auto& a = args->items;
    if (fn->s == "collections OrderedDict") return make(Obj::K::Dict);
    if (fn->s == "torch.jit._pickle restore_type_tag" && a.size() == 2) return a[0];
    if (fn->s == "torch._utils _rebuild_parameter" && a.size() >= 1 && a[0]->k == Obj::K::Tensor) return a[0];
    if ((fn->s == "torch._utils _rebuild_tensor_v2" || fn->s == "torch._utils _rebuild_tensor") && a.size() >= 4) {
      if (a[0]->k != Obj::K::Tensor) throw err("a tensor over a non-storage");
      const int64_t offset = as_int(a[1], "a tensor's offset");
      const auto size = ints(a[2], "a tensor's size"), stride = ints(a[3], "a tensor's stride");
      if (size.size() != stride.size()) throw err("a tensor's size and stride differ in length");
      if (size.size() > 64) throw err("a tensor of more than 64 dimensions");
      const int64_t have = a[0]->t.numel();
      int64_t last = offset, numel = 1;
      bool ok = offset >= 0 && offset <= have;
      for (size_t d = 0; d < size.size() && ok; ++d) {
        int64_t extent = 0;
        ok = size[d] >= 0 && stride[d] >= 0 && !__builtin_mul_overflow(numel, size[d], &numel) &&
             (size[d] == 0 || (!__builtin_mul_overflow(size[d] - 1, stride[d], &extent) &&
                               !__builtin_add_overflow(last, extent, &last)));
      }
      if (!ok || (numel > 0 && last >= have))
        throw err("a tensor reaches past its storage (" + std::to_string(have) + " elements)");
      auto o = make(Obj::K::Tensor);
      o->t = a[0]->t.as_strided(size, stride, offset);
      return o;
    }
    throw err("global '" + fn->s + "' is not allowed in a state_dict");
  }

  std::string_view p_;
  const std::map<std::string, std::string_view>& zip_;
  std::string prefix_;
  size_t i_ = 0;
  std::vector<Ref> stack_, memo_;
  std::vector<size_t> marks_;
  std::map<std::string, Ref> storages_;
  std::vector<Ref> made_;  // every value made, for the destructor
};

}  // namespace

std::map<std::string, at::Tensor> read_state_dict(std::string_view bytes, const std::string& where) {
  const auto zip = zip_entries(bytes, where);
  std::string pkl;
  for (const auto& [name, data] : zip)
    if (name.size() >= 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0) {
      if (!pkl.empty()) throw FormatError(where + ": not a torch.save file: two data.pkl entries");
      pkl = name;
    }
  if (pkl.empty()) throw FormatError(where + ": not a torch.save file: no data.pkl entry");
  Unpickler unpickler(zip.at(pkl), zip, pkl.substr(0, pkl.size() - 8));
  Ref top;
  try {
    top = unpickler.run();
  } catch (const FormatError& e) {
    throw FormatError(where + ": " + e.what());
  } catch (const c10::Error& e) {
    throw FormatError(where + ": " + e.what_without_backtrace());
  }
  if (top->k != Obj::K::Dict) throw FormatError(where + ": expected a dict of tensors (a state_dict)");
  std::map<std::string, at::Tensor> out;
  for (const auto& [k, v] : top->dict)
    if (k->k == Obj::K::Str && v->k == Obj::K::Tensor) out[k->s] = v->t;
  return out;  // before the unpickler empties its values
}

}  // namespace stepverify
