#include "controlplane/config/yaml_to_proto.h"

#include <google/protobuf/descriptor.h>
#include <strings.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <set>

namespace zproxy::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return "\"" + node.Scalar() + "\"";
    default:
      return "an undefined value";
  }
}

bool ParseUnsigned(const std::string& text, uint64_t max, uint64_t* out) {
  // Digits only: strtoull would accept "-1", "+3", " 7" and hex, all surprising in config.
  if (text.empty() || text.size() > 20) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  if (v > max) return false;
  *out = v;
  return true;
}

bool ParseSigned(const std::string& text, int64_t min, int64_t max, int64_t* out) {
  bool neg = !text.empty() && text[0] == '-';
  uint64_t mag = 0;
  if (!ParseUnsigned(neg ? text.substr(1) : text, std::numeric_limits<uint64_t>::max(), &mag)) {
    return false;
  }
  if (neg) {
    if (mag > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1) return false;
    int64_t v = mag == static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1
                    ? std::numeric_limits<int64_t>::min()
                    : -static_cast<int64_t>(mag);
    if (v < min) return false;
    *out = v;
    return true;
  }
  if (mag > static_cast<uint64_t>(max)) return false;
  *out = static_cast<int64_t>(mag);
  return true;
}

bool ParseDouble(const std::string& text, double* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size()) return false;
  *out = v;
  return true;
}

bool ParseBool(const std::string& text, bool* out) {
  for (const char* t : {"true", "yes", "on"}) {
    if (strcasecmp(text.c_str(), t) == 0) return *out = true, true;
  }
  for (const char* f : {"false", "no", "off"}) {
    if (strcasecmp(text.c_str(), f) == 0) return *out = false, true;
  }
  return false;
}

// "LbPolicy" -> "LB_POLICY_": proto style prefixes enum values with the type name, and
// YAML users should not have to repeat it.
std::string EnumPrefix(const EnumDescriptor* e) {
  std::string out;
  for (char c : e->name()) {
    if (c >= 'A' && c <= 'Z' && !out.empty()) out += '_';
    out += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  }
  return out + "_";
}

const EnumValueDescriptor* FindEnumValue(const EnumDescriptor* e, const std::string& text) {
  std::string prefix = EnumPrefix(e);
  for (int i = 0; i < e->value_count(); ++i) {
    const EnumValueDescriptor* v = e->value(i);
    const std::string& name = v->name();
    if (strcasecmp(name.c_str(), text.c_str()) == 0) return v;
    if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
        strcasecmp(name.c_str() + prefix.size(), text.c_str()) == 0) {
      return v;
    }
  }
  return nullptr;
}

std::string EnumChoices(const EnumDescriptor* e) {
  std::string out;
  for (int i = 0; i < e->value_count(); ++i) {
    const EnumValueDescriptor* v = e->value(i);
    if (v->number() == 0) continue;  // the "unspecified" placeholder is not a real choice
    if (!out.empty()) out += ", ";
    for (char c : v->name()) out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  return out;
}

std::string Expected(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      return "a string";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "a boolean (true/false)";
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return "an unsigned integer";
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
      return "an integer";
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return "a number";
    case FieldDescriptor::CPPTYPE_ENUM:
      return "one of " + EnumChoices(f->enum_type());
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return "a map";
  }
  return "a value";
}

class Mapper {
 public:
  Mapper(const YamlMappingOptions& options, std::string_view source, SourceMap* source_map)
      : options_(options), source_(source), source_map_(source_map) {}

  ConfigErrors TakeErrors() { return std::move(errors_); }

  void MapMessage(const YAML::Node& node, const std::string& path, Message* msg) {
    Record(path, node);
    const Descriptor* desc = msg->GetDescriptor();
    if (node.IsScalar()) {
      auto it = options_.scalar_shorthand.find(desc->full_name());
      const FieldDescriptor* f =
          it == options_.scalar_shorthand.end() ? nullptr : desc->FindFieldByName(it->second);
      if (f != nullptr) {
        StoreScalar(node, Join(path, f->name()), msg, f);
        return;
      }
    }
    if (node.IsNull()) return;  // `key:` with no value: leave the message empty
    if (!node.IsMap()) {
      Error(node, path, "expected a map, got " + Describe(node));
      return;
    }
    std::set<std::string> seen;
    for (const auto& kv : node) {
      const YAML::Node& key = kv.first;
      const YAML::Node& value = kv.second;
      if (!key.IsScalar()) {
        Error(key, path, "map keys must be field names, got " + Describe(key));
        continue;
      }
      const std::string& name = key.Scalar();
      const FieldDescriptor* f = desc->FindFieldByName(name);
      if (f == nullptr) {
        Error(key, path, "unknown field \"" + name + "\"");
        continue;
      }
      if (!seen.insert(name).second) {
        Error(key, path, "field \"" + name + "\" given twice");
        continue;
      }
      if (const auto* oneof = f->containing_oneof()) {
        for (int i = 0; i < oneof->field_count(); ++i) {
          const FieldDescriptor* other = oneof->field(i);
          if (other != f && seen.count(other->name()) != 0) {
            Error(key, path,
                  "fields \"" + other->name() + "\" and \"" + name + "\" exclude each other");
          }
        }
      }
      std::string child = Join(path, name);
      // Null (`key:` or `key: ~`) means "not given", so the default applies.
      if (value.IsNull()) {
        Record(child, key);
        continue;
      }
      MapField(value, child, msg, f);
    }
  }

 private:
  static std::string Join(const std::string& path, const std::string& name) {
    return path.empty() ? name : path + "." + name;
  }

  void MapField(const YAML::Node& value, const std::string& path, Message* msg,
                const FieldDescriptor* f) {
    const Reflection* r = msg->GetReflection();
    Record(path, value);
    if (f->is_map()) {
      MapProtoMap(value, path, msg, f);
    } else if (f->is_repeated()) {
      if (!value.IsSequence()) {
        Error(value, path, "expected a list, got " + Describe(value));
        return;
      }
      for (size_t i = 0; i < value.size(); ++i) {
        const YAML::Node elem = value[i];
        std::string elem_path = path + "[" + std::to_string(i) + "]";
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
          MapMessage(elem, elem_path, r->AddMessage(msg, f));
        } else {
          StoreScalar(elem, elem_path, msg, f);
        }
      }
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      MapMessage(value, path, r->MutableMessage(msg, f));
    } else {
      StoreScalar(value, path, msg, f);
    }
  }

  // proto map<K, V>: a YAML map whose keys fill the entry's key field.
  void MapProtoMap(const YAML::Node& value, const std::string& path, Message* msg,
                   const FieldDescriptor* f) {
    if (!value.IsMap()) {
      Error(value, path, "expected a map, got " + Describe(value));
      return;
    }
    const Reflection* r = msg->GetReflection();
    for (const auto& kv : value) {
      std::string key_text = kv.first.IsScalar() ? kv.first.Scalar() : "?";
      std::string entry_path = path + "[\"" + key_text + "\"]";
      Message* entry = r->AddMessage(msg, f);
      const FieldDescriptor* key_field = f->message_type()->map_key();
      const FieldDescriptor* value_field = f->message_type()->map_value();
      StoreScalar(kv.first, entry_path, entry, key_field);
      if (value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        MapMessage(kv.second, entry_path,
                   entry->GetReflection()->MutableMessage(entry, value_field));
      } else {
        StoreScalar(kv.second, entry_path, entry, value_field);
      }
    }
  }

  void StoreScalar(const YAML::Node& node, const std::string& path, Message* msg,
                   const FieldDescriptor* f) {
    Record(path, node);
    if (!node.IsScalar()) {
      Error(node, path, "expected " + Expected(f) + ", got " + Describe(node));
      return;
    }
    const Reflection* r = msg->GetReflection();
    const bool rep = f->is_repeated();
    const std::string& text = node.Scalar();
    auto bad = [&] { Error(node, path, "expected " + Expected(f) + ", got \"" + text + "\""); };
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        rep ? r->AddString(msg, f, text) : r->SetString(msg, f, text);
        return;
      case FieldDescriptor::CPPTYPE_BOOL: {
        bool v;
        if (!ParseBool(text, &v)) return bad();
        rep ? r->AddBool(msg, f, v) : r->SetBool(msg, f, v);
        return;
      }
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64: {
        const bool is32 = f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32;
        uint64_t max =
            is32 ? std::numeric_limits<uint32_t>::max() : std::numeric_limits<uint64_t>::max();
        uint64_t v;
        if (!ParseUnsigned(text, std::numeric_limits<uint64_t>::max(), &v)) return bad();
        if (v > max) {
          return Error(node, path,
                       "value " + text + " is too large (max " + std::to_string(max) + ")");
        }
        if (is32) {
          rep ? r->AddUInt32(msg, f, static_cast<uint32_t>(v))
              : r->SetUInt32(msg, f, static_cast<uint32_t>(v));
        } else {
          rep ? r->AddUInt64(msg, f, v) : r->SetUInt64(msg, f, v);
        }
        return;
      }
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64: {
        const bool is32 = f->cpp_type() == FieldDescriptor::CPPTYPE_INT32;
        int64_t min =
            is32 ? std::numeric_limits<int32_t>::min() : std::numeric_limits<int64_t>::min();
        int64_t max =
            is32 ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int64_t>::max();
        int64_t v;
        if (!ParseSigned(text, min, max, &v)) return bad();
        if (is32) {
          rep ? r->AddInt32(msg, f, static_cast<int32_t>(v))
              : r->SetInt32(msg, f, static_cast<int32_t>(v));
        } else {
          rep ? r->AddInt64(msg, f, v) : r->SetInt64(msg, f, v);
        }
        return;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        double v;
        if (!ParseDouble(text, &v)) return bad();
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
          rep ? r->AddDouble(msg, f, v) : r->SetDouble(msg, f, v);
        } else {
          rep ? r->AddFloat(msg, f, static_cast<float>(v))
              : r->SetFloat(msg, f, static_cast<float>(v));
        }
        return;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const EnumValueDescriptor* v = FindEnumValue(f->enum_type(), text);
        if (v == nullptr) return bad();
        rep ? r->AddEnum(msg, f, v) : r->SetEnum(msg, f, v);
        return;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return bad();  // callers route messages to MapMessage
    }
  }

  static SourceLocation Location(const YAML::Node& node) {
    YAML::Mark m = node.Mark();
    // Null nodes created for missing values carry no position (-1).
    if (m.line < 0 || m.column < 0) return {};
    return {m.line + 1, m.column + 1};
  }

  void Record(const std::string& path, const YAML::Node& node) {
    if (source_map_ == nullptr || path.empty()) return;
    SourceLocation loc = Location(node);
    if (loc.line > 0) source_map_->emplace(path, loc);
  }

  void Error(const YAML::Node& node, const std::string& path, std::string message) {
    SourceLocation loc = Location(node);
    errors_.push_back(
        ConfigError{path, std::move(message), std::string(source_), loc.line, loc.column});
  }

  const YamlMappingOptions& options_;
  std::string_view source_;
  SourceMap* source_map_;
  ConfigErrors errors_;
};

}  // namespace

ConfigErrors YamlToMessage(const YAML::Node& node, const YamlMappingOptions& options,
                           std::string_view source, google::protobuf::Message* out,
                           SourceMap* source_map) {
  Mapper mapper(options, source, source_map);
  try {
    mapper.MapMessage(node, "", out);
  } catch (const YAML::Exception& e) {
    // Node accessors throw only on misuse (a bug here), but never let that escape the API.
    ConfigErrors errors = mapper.TakeErrors();
    errors.push_back(ConfigError{"", std::string("internal YAML mapping error: ") + e.what(),
                                 std::string(source), 0, 0});
    return errors;
  }
  return mapper.TakeErrors();
}

}  // namespace zproxy::config
