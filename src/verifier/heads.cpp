// Verifier heads: LM-head candidates, MLP, linear and OVM value heads.
#include "verifier/heads.h"

#include <map>

#include "backbone/tensor_io.h"
#include "stepverify/errors.h"
#include "stepverify/transformer.h"
#include "util/files.h"
#include "util/sequences.h"

namespace stepverify {
namespace {

using detail::shape_str;

// Where head tensors come from: the checkpoint, a safetensors file, or a
// torch.save file (read without Python through libtorch's unpickler).
class WeightSource {
 public:
  WeightSource(const HeadSpec& spec, const Checkpoint& ckpt, const std::filesystem::path& dir) : ckpt_(ckpt) {
    if (spec.file.empty()) {
      where_ = ckpt.name();
      return;
    }
    const auto path = dir / spec.file;
    where_ = path.string();
    if (!std::filesystem::exists(path))
      throw IoError(where_ + ": head weights file not found (head '" + spec.name + "')");
    if (path.extension() == ".safetensors") {
      file_ = Checkpoint::open(path);
      return;
    }
    pickled_ = read_state_dict(detail::read_file(path), where_);
  }

  /// The tensor `name`, whose shape must be `expected`, as float32.
  at::Tensor get(const std::string& name, const std::vector<int64_t>& expected) const {
    at::Tensor t = raw(name);
    if (!t.is_floating_point()) throw ShapeError(where_ + ": tensor " + name + " is not floating point");
    if (t.sizes() != at::IntArrayRef(expected))
      throw ShapeError(where_ + ": tensor " + name + ": expected " + shape_str(expected) + ", found " +
                       shape_str(t.sizes()));
    return t.to(torch::kFloat);
  }
  /// The shape of tensor `name`; throws ShapeError when it is missing.
  std::vector<int64_t> shape(const std::string& name) const { return raw(name).sizes().vec(); }
  bool contains(const std::string& name) const {
    if (!pickled_.empty()) return pickled_.count(name) > 0;
    return file_ ? file_->contains(name) : ckpt_.contains(name);
  }

 private:
  at::Tensor raw(const std::string& name) const {
    if (!pickled_.empty()) {
      auto it = pickled_.find(name);
      if (it == pickled_.end()) throw ShapeError(where_ + ": required tensor " + name + " is missing");
      return it->second;
    }
    return to_tensor((file_ ? *file_ : ckpt_).tensor(name));
  }

  const Checkpoint& ckpt_;
  std::shared_ptr<const Checkpoint> file_;
  std::map<std::string, at::Tensor> pickled_;
  std::string where_;
};

std::string join(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

class CandidatesHead final : public Head {
 public:
  CandidatesHead(const HeadSpec& spec, const Model& model) : Head(spec) {
    if (!model.has_lm_head())
      throw ConfigError("head '" + spec.name + "' reads LM-head logits but " + model.config().architecture +
                        " was loaded without an LM head");
    EncodeOptions o;
    o.add_special_tokens = false;
    std::vector<int64_t> ids;
    if (!spec.candidate_ids.empty()) {
      ids = spec.candidate_ids;
      for (int64_t id : ids)
        if (id >= model.config().vocab_size)
          throw ConfigError("head '" + spec.name + "': candidate id " + std::to_string(id) +
                            " is outside the vocabulary (" + std::to_string(model.config().vocab_size) + ")");
    } else if (!spec.candidate_tokens.empty()) {
      for (const auto& c : spec.candidate_tokens) {
        auto enc = model.tokenizer().encode(c, o);
        if (enc.empty()) throw ConfigError("head '" + spec.name + "': candidate '" + c + "' encodes to no token");
        ids.push_back(enc.back());
      }
    } else {
      ids = model.tokenizer().encode(spec.candidates, o);
    }
    if (ids.size() < 2)
      throw ConfigError("head '" + spec.name + "': candidates '" + spec.candidates + "' encode to " +
                        std::to_string(ids.size()) + " token(s); two or more are needed");
    if (spec.class_index >= static_cast<int>(ids.size()))
      throw ConfigError("head '" + spec.name + "': class_index outside the candidates");
    auto idx = torch::tensor(ids, torch::kLong);
    weight_ = model.transformer().lm_head->weight.detach().index_select(0, idx.to(model.device())).to(torch::kFloat);
  }
  at::Tensor outputs(const at::Tensor& h) const override { return at::matmul(h, weight_.t()); }

 private:
  at::Tensor weight_;  // [C, H]
};

class MlpHead final : public Head {
 public:
  MlpHead(const HeadSpec& spec, const WeightSource& src, int64_t H, c10::Device dev) : Head(spec) {
    w0_ = src.get(join(spec.weights, "0.weight"), {H, H}).to(dev);
    b0_ = src.get(join(spec.weights, "0.bias"), {H}).to(dev);
    // score.2.weight is [C, H]: 2 classes for a PRM, 1 output for a reward model.
    const std::string w2 = join(spec.weights, "2.weight");
    const auto s2 = src.shape(w2);
    const int64_t C = s2.size() == 2 ? s2[0] : 0;
    if (C < 1) throw ShapeError("tensor " + w2 + ": expected [C," + std::to_string(H) + "], found " + shape_str(s2));
    w2_ = src.get(w2, {C, H}).to(dev);
    b2_ = src.get(join(spec.weights, "2.bias"), {C}).to(dev);
  }
  at::Tensor outputs(const at::Tensor& h) const override {
    return at::linear(at::relu(at::linear(h, w0_, b0_)), w2_, b2_);
  }

 private:
  at::Tensor w0_, b0_, w2_, b2_;
};

class LinearHead final : public Head {
 public:
  LinearHead(const HeadSpec& spec, const WeightSource& src, int64_t H, int64_t C, c10::Device dev) : Head(spec) {
    w_ = src.get(join(spec.weights, "weight"), {C, H}).to(dev);
    const std::string b = join(spec.weights, "bias");
    if (src.contains(b)) b_ = src.get(b, {C}).to(dev);
  }
  at::Tensor outputs(const at::Tensor& h) const override { return at::linear(h, w_, b_); }

 private:
  at::Tensor w_, b_;
};

class OvmHead final : public Head {
 public:
  OvmHead(const HeadSpec& spec, const WeightSource& src, int64_t H, c10::Device dev) : Head(spec) {
    gain_ = src.get(join(spec.weights, "gain"), {1}).to(dev);
    bias_ = src.get(join(spec.weights, "bias"), {1}).to(dev);
    w_ = src.get(join(spec.weights, "vscore_head.weight"), {1, H}).to(dev);
  }
  at::Tensor outputs(const at::Tensor& h) const override { return at::matmul(gain_ * h + bias_, w_.t()); }

 private:
  at::Tensor gain_, bias_, w_;
};

}  // namespace

at::Tensor Head::scores(const at::Tensor& hidden) const {
  auto out = outputs(hidden.to(torch::kFloat));
  const int64_t C = out.size(-1);
  const int64_t k =
      spec_.activation == Activation::Softmax ? spec_.class_index : std::min<int64_t>(spec_.class_index, C - 1);
  at::Tensor s;
  if (spec_.activation == Activation::Softmax)
    s = at::softmax(out, -1).select(-1, k);
  else if (spec_.activation == Activation::Sigmoid)
    s = at::sigmoid(out.select(-1, k));
  else if (spec_.activation == Activation::Tanh)
    s = at::tanh(out.select(-1, k));
  else
    s = out.select(-1, k);
  return s.to(torch::kDouble).cpu();
}

namespace {

// An implicit PRM's head: its input is the step reward itself, [N, 1]
// (Verifier::Impl::head_inputs reduces the tokens' log-ratios).
class ImplicitHead : public Head {
 public:
  using Head::Head;
  at::Tensor outputs(const at::Tensor& rewards) const override { return rewards.to(torch::kFloat); }
};

}  // namespace

std::shared_ptr<const Head> make_head(const HeadSpec& spec, const Checkpoint& ckpt, const std::filesystem::path& dir,
                                      const Model& model) {
  const int64_t H = model.config().hidden_size;
  const auto dev = model.device();
  if (spec.type == HeadType::Implicit) {
    if (!model.has_lm_head()) throw ConfigError("head '" + spec.name + "': an implicit PRM needs a causal LM");
    return std::make_shared<ImplicitHead>(spec);
  }
  if (spec.type == HeadType::LmCandidates) return std::make_shared<CandidatesHead>(spec, model);
  WeightSource src(spec, ckpt, dir);
  if (spec.type == HeadType::Mlp) return std::make_shared<MlpHead>(spec, src, H, dev);
  if (spec.type == HeadType::Ovm) return std::make_shared<OvmHead>(spec, src, H, dev);
  // linear: the class count is what the activation needs (softmax: 2+; else 1),
  // or what the checkpoint holds.
  int64_t C = spec.activation == Activation::Softmax ? std::max<int64_t>(2, spec.class_index + 1) : 1;
  if (model.config().head == HeadKind::TokenClassification || model.config().head == HeadKind::SequenceClassification)
    if (spec.file.empty() && spec.weights == "score") C = model.config().num_labels;
  const int64_t inputs = H + spec.logprob_features();  // + min and mean log-probability per span
  if (inputs != H && !model.has_lm_head())
    throw ConfigError("head '" + spec.name + "' reads log-probabilities but the backbone has no LM head");
  return std::make_shared<LinearHead>(spec, src, inputs, C, dev);
}

}  // namespace stepverify
