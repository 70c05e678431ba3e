# Picks fhir-test-cases' R4 JSON validator cases for the served types and
# writes them, with the Java validator's base outcomes, to the conformance
# package (see conformance/validatorcases/NOTICE.md). Reads the newest
# commit of a git clone of https://github.com/FHIR/fhir-test-cases:
#
#   python3 scripts/vendor-validator-cases.py <fhir-test-cases git dir> conformance/validatorcases
import json,os,re,subprocess,sys
REPO,OUT=sys.argv[1],sys.argv[2]
def git(*a):
    return subprocess.run(['git','-C',REPO]+list(a),capture_output=True,check=True).stdout
def show(p):
    r=subprocess.run(['git','-C',REPO,'show','HEAD:validator/'+p],capture_output=True)
    return r.stdout if r.returncode==0 else None
commit=git('rev-parse','HEAD').decode().strip()
m=json.loads(show('manifest.json'))
served={'Patient','AllergyIntolerance','Flag','Condition','Procedure','Consent','MedicationStatement','Encounter','Subscription'}
# Cases whose verdict depends on something a base R4 validator cannot have
# here; every other R4 JSON case of a served type is kept.
by_case={
 'maiden-name-extension': 'the verdict is about the context of humanname-mothers-family in the HL7 extensions pack 5.x, which the java validator loads as a package',
 'pat-security-good2': 'the resource of pat-security-bad-string, run without the validator option security-checks; this server always runs those checks (records are shown in browsers), so pat-security-bad-string is kept instead',
 'patient-with-turvakielto': 'meta.profile and the extension are defined by the Finnish base package (hl7.fhir.fi.base), which the java validator resolves as a package',
}
def exclusion(tc):
    n=tc['name']
    if n in by_case: return by_case[n]
    for k in ('packages',):
        if k in tc: return 'needs the package(s) '+', '.join(tc[k])
    for k in ('supporting','profiles','supporting5'):
        if k in tc: return 'needs the supporting definitions '+', '.join(tc[k])
    if 'logical' in tc: return 'a logical model instance, not a FHIR resource'
    if tc.get('allow-comments'): return 'runs with the validator option allow-comments; a server reads RFC 8259 JSON, which has no comments (the same file without the option is kept)'
    if tc.get('validateContains')=='IGNORE': return 'runs with the validator option validateContains=IGNORE; a server checks contained resources (the same file without the option is kept)'
    return None
def outcome(tc):
    cands=[]
    j=tc.get('java')
    if isinstance(j,str): cands.append(j)
    cands.append('java/R4.%s-base.json'%tc['name'])
    cands.append('java/R4.%s-base.json'%tc['name'].replace(' / ',' - R4-').replace(' - R4-R4',' - R4'))
    for c in cands:
        o=show('outcomes/'+c)
        if o: return c,o
    if isinstance(j,dict) and 'errorCount' in j:
        return None,json.dumps({'resourceType':'OperationOutcome','issue':[{'severity':'error','code':'invalid'}]*j['errorCount']}).encode()
    return None,None
os.makedirs(OUT+'/cases',exist_ok=True); os.makedirs(OUT+'/outcomes',exist_ok=True)
cases={}
for tc in m['test-cases']:
    if tc.get('version')!='4.0' or not tc['file'].endswith('.json'): continue
    raw=show(tc['file'])
    if raw is None: continue
    txt=raw.decode('utf-8','replace')
    try: rt=json.loads(txt).get('resourceType')
    except Exception:
        mm=re.search(r'"?resourceType"?\s*:\s*"(\w+)"',txt); rt=mm.group(1) if mm else None
    if rt not in served: continue
    src,o=outcome(tc)
    if o is None: continue
    name=tc['name']
    if name in cases: continue
    local=tc['file'].replace('/','__')
    e={'name':name,'file':'cases/'+local,'type':rt,'source':'validator/'+tc['file']}
    ex=exclusion(tc)
    if ex: e['excluded']=ex
    else:
        open(OUT+'/cases/'+local,'wb').write(raw)
        oname=name.replace(' / ','-').replace(' ','-')+'.json'
        open(OUT+'/outcomes/'+oname,'wb').write(o)
        e['outcome']='outcomes/'+oname
        e['outcomeSource']='validator/outcomes/'+src if src else 'validator/manifest.json (errorCount)'
        if 'security-checks' in tc: e['securityChecks']=True
        if tc.get('explanation') or tc.get('documentation'): e['note']=tc.get('explanation') or tc.get('documentation')
    cases[name]=e
lst=sorted(cases.values(),key=lambda e:e['name'])
json.dump({'repository':'https://github.com/FHIR/fhir-test-cases','commit':commit,'cases':lst},open(OUT+'/cases.json','w'),indent=1,ensure_ascii=False)
open(OUT+'/LICENSE.txt','wb').write(git('show','HEAD:LICENSE.txt'))
print(len(lst),'cases,',sum(1 for e in lst if 'excluded' not in e),'kept')

# NOTICE.md: where the files come from, and what was left out and why.
from collections import Counter
kept=[c for c in lst if 'excluded' not in c]
exc=[c for c in lst if 'excluded' in c]
cnt=Counter(c['type'] for c in kept)
lines=['# HL7 validator test cases (fhir-test-cases)','',
'The files under `cases/` and `outcomes/` are copied unchanged from',
'[FHIR/fhir-test-cases](https://github.com/FHIR/fhir-test-cases), directory `validator/`,',
'commit `%s`, and are licensed under the Apache License 2.0 (`LICENSE.txt`,'%commit,
'copied from the same repository). Copyright HL7 International and the contributors of fhir-test-cases.',
'`cases.json` is ours: it names each case (as the upstream `manifest.json` does), its file, its',
'resource type and the upstream paths (`source`, `outcomeSource`). File names replace `/` with `__`.',
'','## Selection','',
'Every upstream case with version `4.0` (R4), a JSON file, and a resource of a type this server serves',
'(Patient, AllergyIntolerance, Flag, Condition, Procedure, Consent, MedicationStatement, Encounter,',
'Subscription; for malformed JSON the type its `resourceType` names) and a Java outcome: %d cases.'%len(lst),
"The expected verdict is the Java validator's base outcome (`outcomes/java/R4.<case>-base.json` or the",
'file the manifest names): valid iff it has no issue of severity error or fatal.',
'Kept: %d (%s).'%(len(kept),', '.join('%s %d'%(k,v) for k,v in cnt.most_common())),
'','## Excluded (%d), and why'%len(exc),'',
'A case is left out only when its verdict depends on something a base R4 validator cannot have here',
'(an IG package, supporting definitions) or on a validator option whose opposite the server applies.','']
lines+=['- `%s` (%s): %s'%(c['name'],c['type'],c['excluded']) for c in exc]
lines+=['','Regenerate with `python3 scripts/vendor-validator-cases.py <fhir-test-cases clone> conformance/validatorcases`.','']
open(OUT+'/NOTICE.md','w').write('\n'.join(lines))
