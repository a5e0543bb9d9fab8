// Solutions as steps, and the policy prompt.
#include "stepverify/steps.h"

#include "util/sequences.h"

namespace stepverify {

std::vector<std::string> split_steps(const std::string& text, const std::string& delimiter) {
  if (delimiter.empty()) return detail::is_blank(text) ? std::vector<std::string>{} : std::vector<std::string>{text};
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(delimiter, start);
    if (end == std::string::npos) end = text.size();
    std::string piece = text.substr(start, end - start);
    if (!detail::is_blank(piece)) out.push_back(std::move(piece));
    start = end + delimiter.size();
  }
  return out;
}

std::string PolicyPrompt::render(const std::string& question, const std::vector<std::string>& steps) const {
  std::string prompt = prompt_template;
  if (auto pos = prompt.find("{question}"); pos != std::string::npos) prompt.replace(pos, 10, question);
  for (const auto& s : steps) prompt += s + step_delimiter;
  return prompt;
}

}  // namespace stepverify
