#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "stepverify/checkpoint.h"
#include "stepverify/errors.h"

namespace stepverify {
namespace {

class MappedFile final : public ByteSource {
 public:
  explicit MappedFile(const std::filesystem::path& path) : name_(path.string()) {
    int fd = ::open(name_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw IoError(name_ + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      throw IoError(name_ + ": cannot stat: " + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw IoError(name_ + ": not a regular file");
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      // Writable and private: tensors may use the bytes in place, and a
      // write (training a loaded model) copies the page, never the file.
      void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        throw IoError(name_ + ": cannot map: " + std::strerror(err));
      }
      data_ = static_cast<const std::byte*>(p);
    }
    ::close(fd);
  }
  ~MappedFile() override {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const override { return data_; }
  size_t size() const override { return size_; }
  const std::string& name() const override { return name_; }
  bool mapped() const override { return true; }
  void release(const std::byte* data, size_t size) const override {
    // Whole pages inside the range only: neighbours may still be in use.
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    auto lo = reinterpret_cast<uintptr_t>(data), hi = lo + size;
    const auto begin = reinterpret_cast<uintptr_t>(data_), end = begin + size_;
    lo = std::max(begin, (lo + page - 1) / page * page);
    hi = std::min(end, hi / page * page);
    if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
  }

 private:
  std::string name_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

class MemorySource final : public ByteSource {
 public:
  MemorySource(std::string bytes, std::string name) : bytes_(std::move(bytes)), name_(std::move(name)) {}
  const std::byte* data() const override { return reinterpret_cast<const std::byte*>(bytes_.data()); }
  size_t size() const override { return bytes_.size(); }
  const std::string& name() const override { return name_; }

 private:
  std::string bytes_;
  std::string name_;
};

}  // namespace

std::shared_ptr<const ByteSource> map_file(const std::filesystem::path& path) {
  return std::make_shared<MappedFile>(path);
}

std::shared_ptr<const ByteSource> memory_source(std::string bytes, std::string name) {
  return std::make_shared<MemorySource>(std::move(bytes), std::move(name));
}

}  // namespace stepverify
