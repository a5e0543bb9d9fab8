// Solutions as steps, and the policy prompt.
#include "stepverify/steps.h"

#include <algorithm>
#include <cctype>

namespace stepverify {

std::vector<std::string> split_steps(const std::string& text, const std::string& delimiter) {
  auto blank = [](const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
  };
  if (delimiter.empty()) return blank(text) ? std::vector<std::string>{} : std::vector<std::string>{text};
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(delimiter, start);
    if (end == std::string::npos) end = text.size();
    std::string piece = text.substr(start, end - start);
    if (!blank(piece)) out.push_back(std::move(piece));
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
