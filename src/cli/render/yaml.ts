/** Objects to a multi-document YAML text, with a comment header; the Lua source stays a readable block. */
import { stringify } from 'yaml';

export function manifestYaml(objects: readonly object[], header: readonly string[]): string {
  const comment = header.map((line) => (line ? `# ${line}` : '#')).join('\n');
  const docs = objects.map((o) => stringify(o, { lineWidth: 0, blockQuote: 'literal', aliasDuplicateObjects: false }));
  return `${comment}\n---\n${docs.join('---\n')}`;
}
